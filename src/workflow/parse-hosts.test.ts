import { describe, expect, test } from "vitest";
import { formatDiagnostic, runnerNeeds } from "./model.js";
import { parseWorkflow } from "./parse.js";

/** A workflow with one host written as `host` (flow YAML) and one step on it. */
function withHost(host: string): string {
  return `name: w
inventory: {hosts: {build: ${host}}}
steps: [{name: s, command: "true"}]
`;
}

function problems(text: string): string[] {
  const { workflow, diagnostics } = parseWorkflow(text, "wf.yaml");
  expect(workflow).toBeUndefined();
  return diagnostics.map(formatDiagnostic);
}

function hosts(text: string) {
  const { workflow, diagnostics } = parseWorkflow(text, "wf.yaml");
  expect(diagnostics.map(formatDiagnostic)).toEqual([]);
  return workflow!.hosts;
}

describe("executor: docker", () => {
  test("a short image id YAML reads as a number is refused saying so, and how to quote it", () => {
    expect(problems(withHost("{executor: docker, image: 8675e6677835}"))).toEqual([
      'wf.yaml:2:54: image of host "build" must be a string, got 8675e6677835, which YAML reads as a number (hint: Quote it to give it as text: "8675e6677835")',
    ]);
    expect(hosts(withHost('{executor: docker, image: "8675e6677835"}')).build).toMatchObject({
      container: { image: "8675e6677835" },
    });
  });

  test("a host with executor docker runs in its image, with the avtomatika-bot limits and no network by default", () => {
    expect(hosts(withHost("{executor: docker, image: busybox:local}"))).toEqual({
      build: {
        kind: "local",
        container: {
          image: "busybox:local",
          memory_bytes: 256 * 1024 * 1024,
          cpus: 0.5,
          pids: 100,
          network: "none",
        },
      },
    });
  });

  test("limits and network are taken as written; memory in docker run's notation", () => {
    const text = `name: w
inventory:
  hosts:
    build:
      group: linux
      labels: [fast]
      executor: docker
      image: registry.local/tools:2
      memory: 1g
      cpus: 2
      pids: 500
      network: host
steps: [{name: s, command: "true"}]
`;
    expect(hosts(text)).toEqual({
      build: {
        kind: "runner",
        group: "linux",
        labels: ["fast"],
        container: {
          image: "registry.local/tools:2",
          memory_bytes: 1024 ** 3,
          cpus: 2,
          pids: 500,
          network: "host",
        },
      },
    });
  });

  test.each([
    ["512m", 512 * 1024 ** 2],
    ["512MiB", 512 * 1024 ** 2],
    ["64mb", 64 * 1024 ** 2],
    ["1.5g", 1.5 * 1024 ** 3],
    ["16777216", 16 * 1024 ** 2],
    ["8192k", 8 * 1024 ** 2],
  ])("memory %s is %d bytes", (memory, bytes) => {
    const spec = hosts(withHost(`{executor: docker, image: i, memory: "${memory}"}`)).build;
    expect(spec?.kind !== "direct" && spec?.container?.memory_bytes).toBe(bytes);
  });

  test("a docker host needs a runner with the docker label, besides its own labels", () => {
    const { workflow } = parseWorkflow(withHost("{labels: [gpu], executor: docker, image: i}"), "wf.yaml");
    expect(runnerNeeds(workflow!)).toEqual([{ host: "build", group: null, labels: ["gpu", "docker"] }]);
    const local = parseWorkflow(withHost("{executor: docker, image: i}"), "wf.yaml").workflow!;
    expect(runnerNeeds(local)).toEqual([{ host: "build", group: null, labels: ["docker"] }]);
  });

  test("executor process is the default and may be written out", () => {
    expect(hosts(withHost("{executor: process}"))).toEqual({ build: { kind: "local" } });
  });

  test("an unknown executor is refused with the list of executors", () => {
    expect(problems(withHost("{executor: dokcer, image: i}"))).toEqual([
      'wf.yaml:2:39: unknown executor "dokcer" in host "build" (hint: did you mean "docker"? executors: process, docker)',
    ]);
  });

  test("executor docker without an image is refused", () => {
    expect(problems(withHost("{executor: docker}"))).toEqual([
      'wf.yaml:2:29: host "build" has executor docker but no image (hint: add `image: NAME:TAG`, an image present on the runner (docker pull or docker build it there))',
    ]);
  });

  test("a memory that is not a size is refused with docker's notation as the hint", () => {
    expect(problems(withHost("{executor: docker, image: i, memory: lots}"))).toEqual([
      'wf.yaml:2:65: memory of host "build" must be a size like 256m, got "lots" (hint: write bytes or a number with k, m or g, as docker run --memory takes it: 512m, 1g)',
    ]);
    expect(problems(withHost("{executor: docker, image: i, memory: 1m}"))).toEqual([
      'wf.yaml:2:65: memory of host "build" is below Docker\'s minimum of 6m (hint: give the container at least 6m)',
    ]);
  });

  test("limits that are not positive numbers are refused", () => {
    expect(problems(withHost("{executor: docker, image: i, cpus: 0, pids: 1.5}"))).toEqual([
      'wf.yaml:2:63: cpus of host "build" must be a positive number, got 0',
      'wf.yaml:2:72: pids of host "build" must be a positive integer, got 1.5',
    ]);
  });

  test("a direct host (address) cannot use the docker executor", () => {
    expect(problems(withHost('{address: "http://10.0.0.5:7072", executor: docker, image: i}'))).toEqual([
      'wf.yaml:2:62: host "build" has an address, and direct hosts cannot use executor docker (hint: remove address to run on the server\'s runners with the docker label (add group/labels to choose them), or remove the executor settings)',
    ]);
  });

  test("container settings without executor docker are refused, not ignored", () => {
    expect(problems(withHost("{image: busybox}"))).toEqual([
      'wf.yaml:2:29: host "build" sets "image" but runs its steps as processes (hint: add `executor: docker` to run its steps in a container, or remove the container settings)',
    ]);
  });
});
