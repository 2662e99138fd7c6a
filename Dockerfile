# runyard's image: one image for `runyard server`, `runyard runner`, `runyard up` and the rest of
# the CLI (the entrypoint is `runyard`; the command picks what it runs). From the repository root:
#
#   docker build -t runyard:0.1.0 .
#
# docs/deploy.md covers the image, docker-compose.yml and the variables; deploy/kubernetes the
# cluster. Runners run workflow steps inside this image, as its user and with its tools: build
# your runner image FROM this one and add what your workflows call.
#
# No `# syntax=` line on purpose: the builder's own Dockerfile frontend is used, so a build needs
# no image from Docker Hub besides NODE_IMAGE. Build with BuildKit (the default of current
# Docker; DOCKER_BUILDKIT=1 on Docker 20.10): it builds only the stages the image needs.

# Any Debian bookworm image with Node 20 works; both stages use it, so the compiled modules of the
# build stage load in the runtime one.
ARG NODE_IMAGE=node:20-bookworm-slim
# The two stages the image is made of. Left alone, both are built here from NODE_IMAGE. runyard's
# own test (test/deploy/compose.test.ts) runs where no registry or compiler is reachable and names
# images it made from its host's files instead; users have no reason to set these.
ARG APP_STAGE=build
ARG RUNTIME_STAGE=runtime

FROM ${NODE_IMAGE} AS build
# The slim image has no compiler: runyard's fork-server (native/fork-server.c) compiles with one,
# and so does better-sqlite3 when no prebuilt binary fits.
RUN apt-get update \
  && apt-get install -y --no-install-recommends g++ make python3 \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The dependencies in a layer of their own, so that a change under src/ does not download them
# again. Their install scripts run below, once the sources they need are there. `npm install`
# with the lockfile installs the locked versions; `npm ci` refuses this lockfile, which lacks the
# other platforms' optional packages of @biomejs/biome (a dev tool).
COPY package.json package-lock.json ./
RUN npm install --ignore-scripts --no-audit --no-fund
COPY . .
# npm's install scripts (better-sqlite3's binding, then runyard's own `install`, which compiles
# the fork-server and the static helpers: the Docker steps' cwd checker, the sandboxed agents'
# egress forwarder), tsc into dist/, then only the production dependencies are kept.
RUN npm rebuild --no-audit --no-fund \
  && npm run install \
  && npm run build \
  && npm prune --omit=dev --no-audit --no-fund \
  && test -x native/build/fork-server -a -x native/build/cwd-check -a -x native/build/egress-forward \
    -a -x native/build/sandbox-holder \
  && mkdir -p /opt/runyard/native/build \
  && cp -R package.json bin dist examples node_modules /opt/runyard/ \
  && cp native/build/fork-server native/build/cwd-check native/build/egress-forward native/build/sandbox-holder \
    /opt/runyard/native/build/ \
  && node /opt/runyard/bin/runyard.js --version

FROM ${NODE_IMAGE} AS runtime
# bash: runyard runs shell steps and its orphan reaper with it. git and ca-certificates: for the
# steps and agent tasks that fetch code. tini: PID 1, which forwards SIGTERM and reaps orphans.
RUN apt-get update \
  && apt-get install -y --no-install-recommends bash ca-certificates git tini \
  && rm -rf /var/lib/apt/lists/*

# Named stages standing for the two ARGs: COPY --from takes a stage name, not a variable.
FROM ${APP_STAGE} AS app

FROM ${RUNTIME_STAGE}
COPY --from=app /opt/runyard /opt/runyard
# The `node` user of the official image (uid 1000): numeric, so Kubernetes can check runAsNonRoot.
# The home (database, artifacts, a runner's journals) is a volume in docs/deploy.md; Docker
# copies this folder's owner into a new named volume, so uid 1000 can write there.
RUN ln -s /opt/runyard/bin/runyard.js /usr/local/bin/runyard \
  && mkdir -p /var/lib/runyard /workspace \
  && chown 1000:1000 /var/lib/runyard /workspace
ENV NODE_ENV=production \
  RUNYARD_HOME=/var/lib/runyard \
  HOME=/workspace
USER 1000:1000
WORKDIR /workspace
EXPOSE 8088
# No HEALTHCHECK here: the same image runs runners, which serve no HTTP. docker-compose.yml
# checks the server's /health on its server service only.
ENTRYPOINT ["/usr/bin/tini", "--", "runyard"]
CMD ["--help"]
