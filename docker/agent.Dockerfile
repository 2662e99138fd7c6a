# The image sandboxed agents run in by default (`runyard agent run --sandbox`, RUNYARD_AGENT_SANDBOX,
# execution_mode: docker). From the repository root, on each runner with Docker:
#
#   docker build -t runyard-agent -f docker/agent.Dockerfile .
#
# The agent CLIs are not in it: a sandboxed turn runs the CLI the runner has (`runyard agents
# install` puts them in <home>/agents), mounted read-only into the container at its own path, so
# the image and the runner never disagree on a version. What the image brings is what those CLIs
# and an agent's commands need: Node 20 (Claude Code, Gemini CLI and Copilot CLI are Node programs;
# the Codex and OpenCode packages start their native binaries through Node), git and a shell with
# the usual tools. Add your project's toolchain (python3, a JDK, ...) in an image FROM this one,
# so the agent can run your tests inside its sandbox.
ARG NODE_IMAGE=node:20-bookworm-slim
FROM ${NODE_IMAGE}
RUN apt-get update \
  && apt-get install -y --no-install-recommends git ca-certificates curl procps ripgrep \
  && rm -rf /var/lib/apt/lists/*
# runyard starts the container as a numeric non-root user (the runner's, or nobody) with a
# read-only root, an in-memory home at /home/runyard and the task's worktree mounted read-write.
