import { describe, expect, it } from "vitest";
import { covers } from "./run-sandbox.js";
import { Sandbox } from "./sandbox.js";
import { needsOwnNetwork, sandboxNetwork } from "./sandbox-network.js";

describe("which steps get a network of their own", () => {
  it("a tenant's run on a shared runner does, and so does a run whose server does not say whose it is", () => {
    expect(needsOwnNetwork({ tenant_id: "acme" }, true)).toBe(true);
    expect(needsOwnNetwork({}, true)).toBe(true);
  });

  it("a platform admin's run, a run outside any tenant, and every run on an unshared runner keep the host's", () => {
    expect(needsOwnNetwork({ tenant_id: "acme", unrestricted: true }, true)).toBe(false);
    expect(needsOwnNetwork({ tenant_id: null }, true)).toBe(false);
    expect(needsOwnNetwork({ tenant_id: "acme" }, false)).toBe(false);
  });
});

describe("a sandbox's command line with a network of its own", () => {
  it("unshares the network, binds the forwarder and the proxy's socket into its /run, sets the proxy's variables and starts the forwarder first", () => {
    const network = sandboxNetwork("/opt/runyard/egress-forward", "/tmp/runyard-egress-x/t.sock");
    const argv = new Sandbox({ bwrap: "bwrap", hide: [] }).command(["bash", "-c", "curl example.com"], {
      cwd: "/srv/work",
      network,
    });
    const at = (arg: string) => argv.indexOf(arg);
    expect(argv).toContain("--unshare-net");
    // Bound after the sandbox's own /run is made, so they land in it.
    expect(at("--unshare-net")).toBeGreaterThan(at("/run"));
    expect(argv.slice(at("/opt/runyard/egress-forward") - 1, at("/opt/runyard/egress-forward") + 2)).toEqual([
      "--ro-bind",
      "/opt/runyard/egress-forward",
      "/run/runyard-net/egress-forward",
    ]);
    expect(argv.join(" ")).toContain("--setenv HTTPS_PROXY http://127.0.0.1:3128");
    expect(argv.slice(at("--") + 1)).toEqual([
      "/run/runyard-net/egress-forward",
      "3128",
      "/run/runyard-net/egress.sock",
      "--",
      "bash",
      "-c",
      "curl example.com",
    ]);
    expect(network.env.NO_PROXY).toBe("localhost,127.0.0.1,::1");
  });
});

describe("a run's sandbox and its network", () => {
  const layout = { folder: "/srv/runs/r1", scratch: ["/srv/state/r1/scratch"], tmp: "/srv/state/r1/tmp" };
  const exposure = { cwd: "/srv/runs/r1", tmp: "/srv/state/r1/tmp" };
  const acme = sandboxNetwork("/opt/egress-forward", "/tmp/runyard-egress-x/acme.sock");

  it("takes only commands with the network it was made with: a tenant's command never enters a sandbox of the host's network, nor the other way round", () => {
    expect(covers({ ...layout, network: acme }, { ...exposure, network: acme })).toBe(true);
    expect(covers(layout, exposure)).toBe(true);
    expect(covers(layout, { ...exposure, network: acme })).toBe(false);
    expect(covers({ ...layout, network: acme }, exposure)).toBe(false);
    const globex = sandboxNetwork("/opt/egress-forward", "/tmp/runyard-egress-x/globex.sock");
    expect(covers({ ...layout, network: acme }, { ...exposure, network: globex })).toBe(false);
  });
});
