import type { ErrorInfo } from "./events.js";

/**
 * Every error runyard reports across a boundary is declared here once, fastify style:
 * a stable code, the HTTP status it maps to, and a hint that tells the user what to do.
 * The code is what runs, events, APIs and exit paths carry (`error.code`).
 */
export const errorTable = {
  INVALID_INPUT: { status: 400, hint: "Fix the input named in the message and try again." },
  WORKFLOW_INVALID: {
    status: 400,
    hint: "Run `runyard validate FILE` to see every problem with its line and column.",
  },
  WORKFLOW_TOO_LARGE: {
    status: 400,
    hint: "Keep a workflow (with its aliases expanded) under the limit: pass big data to steps as files, share values with a few anchors or `vars:`; an operator can raise max_workflow_bytes (RUNYARD_MAX_WORKFLOW_BYTES).",
  },
  USAGE: { status: 400, hint: "Run `runyard --help` for the commands and their flags." },
  FILE_NOT_FOUND: { status: 400, hint: "Check the path; it is read relative to the current folder." },
  STEP_FAILED: { status: 200, hint: "Read the step's output; its exit code says how it failed." },
  EXPECT_VARS_MISSING: {
    status: 200,
    hint: "Make the step print `BOPS_EXPORT:NAME=value` (with `export_vars: true`) or write NAME=value to $RUNYARD_OUTPUT.",
  },
  EXPORT_CONFLICT: {
    status: 200,
    hint: "Targets of one step exported different values for the same name; export host-specific names instead.",
  },
  SPAWN_FAILED: { status: 200, hint: "Check that the shell or command exists and the cwd is a folder." },
  TIMEOUT: { status: 200, hint: "Raise `timeout_seconds` or make the step faster." },
  CANCELED: { status: 200, hint: "The run was canceled on request." },
  RUN_TIMEOUT: {
    status: 200,
    hint: "The run passed the workflow's top-level `timeout:`; raise it, or make the steps faster (a step's own limit is `timeout_seconds`).",
  },
  APPROVAL_REJECTED: {
    status: 200,
    hint: "An approver rejected the step; read their comment in the run's events, fix what they asked for and run it again.",
  },
  APPROVAL_TIMEOUT: {
    status: 200,
    hint: "No approver answered before the deadline: raise the step's args.timeout_seconds, or list approvers who will be there to answer.",
  },
  APPROVAL_NEEDS_SERVER: {
    status: 400,
    hint: "An approval step waits for a person to answer through a server: submit the workflow with `runyard run FILE --server URL` (`runyard up` starts one).",
  },
  CALL_NEEDS_SERVER: {
    status: 400,
    hint: "A workflow.call step runs a saved workflow, and saved workflows live on a server: submit the workflow with `runyard run FILE --server URL` (`runyard up` starts one).",
  },
  AGENT_STEP_UNAVAILABLE: {
    status: 400,
    hint: "An agent.run step needs a runner with agents: run the workflow with `runyard run FILE` on a machine with the agent installed (`runyard agents install`), or through a server whose runners have it.",
  },
  AGENT_OUTPUT_INVALID: {
    status: 200,
    hint: "The agent's final answer never matched the step's output_schema: make the prompt say plainly which fields to answer with, or loosen the schema.",
  },
  EXPORT_NAME_REFUSED: {
    status: 200,
    hint: "A value from outside the workflow's own text (an agent's answer, a called workflow's outputs, an approver's input) never sets a variable programs read as a setting (BASH_ENV, PATH, LD_*, NODE_OPTIONS, GIT_*, ...): give it another name (DEPLOY_PATH), and set the setting from it in the script of the step that needs it (export PATH=\"$DEPLOY_PATH:$PATH\").",
  },
  CALL_FAILED: {
    status: 200,
    hint: "The called workflow's run did not succeed: open it (its id is in the step's error and events) and read the step it names.",
  },
  RUNNER_LOST: {
    status: 200,
    hint: "The runner stopped heartbeating; check it is up and can reach the server.",
  },
  HOST_UNREACHABLE: {
    status: 200,
    hint: "Check the host's address and token, and that `runyard agent-server` runs there.",
  },
  DESTINATION_NOT_ALLOWED: {
    status: 400,
    hint: "The server calls addresses inside its own machine or network (loopback, link-local, private ranges) only where its operator lists them: ask for the destination in the server's config file, under `direct_hosts:` for a host's address, `notify_hosts:` for a notify URL or `mcp_hosts:` for an agent task's MCP server URL.",
  },
  FORGE_FAILED: {
    status: 500,
    hint: "The code forge's API refused or failed a call: check the forge's token and its permissions on the repo (`runyard forge list`).",
  },
  DIRECT_HOST_FAILED: {
    status: 200,
    hint: "Check the host's address and token (the agent-server's --token), and that `runyard agent-server` runs there; the server's log has the details.",
  },
  NOTIFY_FAILED: {
    status: 200,
    hint: "Check that the notify URL is right and that its receiver answers 2xx; the server's log has the details.",
  },
  AGENT_AUTH: { status: 200, hint: "Check the agent's API key or login." },
  AGENT_RATE_LIMIT: {
    status: 200,
    hint: "The model provider limited the rate; retry later or raise the limit.",
  },
  AGENT_UNAVAILABLE: {
    status: 200,
    hint: "The model endpoint kept failing (5xx, overloaded or unreachable) through the run's llm_retry_count retries; check the endpoint, or raise llm_retry_count (a task's env RUNYARD_LLM_RETRY_COUNT).",
  },
  AGENT_STALLED: {
    status: 200,
    hint: "The agent produced nothing for too long; raise the stall timeout or check the model.",
  },
  AGENT_TURN_LIMIT: {
    status: 200,
    hint: "The agent used all its turns; raise the limit (extra_args) or split the task.",
  },
  AGENT_CRASHED: {
    status: 200,
    hint: "The agent CLI exited with an error; its last output is in the run's events and the transcript artifact.",
  },
  AGENT_NOT_INSTALLED: {
    status: 200,
    hint: "Install it on the runner with `runyard agents install NAME`; `runyard agents` shows what is there.",
  },
  AGENT_CWD_NOT_ALLOWED: {
    status: 400,
    hint: "An agent task of anyone but a platform admin works only in a folder under the roots the operator lists as `agent_cwd_roots:` (RUNYARD_AGENT_CWD_ROOTS; a runner allows its own list and its workspace folder): give an absolute cwd under one of them, without `..` and without a symbolic link leading out, or give `repo` to work in a fresh worktree instead. No task works in runyard's own folders (the runner's and server's homes, the agents' workspace), a platform admin's neither.",
  },
  STEP_CWD_NOT_ALLOWED: {
    status: 400,
    hint: "A workflow step of anyone but a platform admin works only in a folder under the roots the operator lists as `step_cwd_roots:` (RUNYARD_STEP_CWD_ROOTS): give a cwd under one of them, without `..` and without a symbolic link leading out, or ask the operator to list the folder. No step works in runyard's own folders (the runner's and server's homes, the agents' workspace), in /, /proc, /sys, /dev, /run or the host's /tmp itself, a platform admin's neither.",
  },
  AGENT_SANDBOX_IMAGE_NOT_ALLOWED: {
    status: 400,
    hint: "A runner runs a task's sandbox only in images its operator allows: its default sandbox image (RUNYARD_AGENT_SANDBOX, or docker_image with execution_mode: docker) and those listed in RUNYARD_AGENT_SANDBOX_IMAGES (agent_sandbox_images: in its config file; NAME:* allows every tag of NAME). Name one of those, or ask the runner's operator to list the image.",
  },
  STEP_CONTAINER_NOT_ALLOWED: {
    status: 400,
    hint: "A member's step containers (hosts with executor: docker) have network none or host and an image named by name, never an image id nor one runyard built for a bot; a platform admin's runs may use any. Change the host's network or image.",
  },
  AGENT_SANDBOX_OVER_LIMIT: {
    status: 400,
    hint: "Ask for less: a runner runs a task's sandbox only within its operator's ceilings, RUNYARD_AGENT_SANDBOX_MAX_MEMORY (default: the runner's RUNYARD_MEMORY, else its machine's memory), RUNYARD_AGENT_SANDBOX_MAX_CPUS (default: RUNYARD_CPUS, else its machine's CPUs) and RUNYARD_AGENT_SANDBOX_MAX_PIDS (default 4096); agent_sandbox_max_memory:, agent_sandbox_max_cpus: and agent_sandbox_max_pids: in its config file.",
  },
  AGENT_SETUP_FAILED: {
    status: 200,
    hint: "The task's setup command (its own `setup`, or the runner's agent_repos entry for the repository) failed in the agent's sandbox before the first turn; read its output in the setup step, fix the command and run the task again.",
  },
  AGENT_MCP_UNAVAILABLE: {
    status: 200,
    hint: "A stdio MCP server is started by the agent inside its sandbox: its command must be found there (in the PATH of the sandbox, or an absolute path it shows), such as a script of the repository or a program the setup command installs.",
  },
  AGENT_FILES_NOT_ALLOWED: {
    status: 400,
    hint: "copy_files names files under the runner's agent_files_dir by relative paths: no .., no absolute path, no symbolic link leading out of that folder, and none into a link of the worktree. Ask the runner's operator which files the folder holds.",
  },
  AGENT_TESTS_FAILED: {
    status: 200,
    hint: "The agent's change did not pass the tests; read the test step's output and the diff artifact.",
  },
  BUDGET_EXCEEDED: {
    status: 429,
    hint: "Raise the run's budget or narrow the task; a tenant's or user's daily or monthly budget starts again when its period ends (runyard usage shows the spend), or an admin raises it.",
  },
  QUOTA_EXCEEDED: {
    status: 429,
    hint: "Stop or remove something you own, or ask an admin for a larger quota.",
  },
  UNAUTHORIZED: {
    status: 401,
    hint: "Send `Authorization: Bearer <token>`; `runyard up` prints the admin token.",
  },
  RATE_LIMITED: {
    status: 429,
    hint: "Wait for the time in the Retry-After header, then try again; an admin can reset a forgotten password with `runyard user passwd NAME`.",
  },
  FORBIDDEN: { status: 403, hint: "This token may not do that; use a user token, not a runner token." },
  NOT_FOUND: { status: 404, hint: "Check the id; `runyard runs list` shows the runs." },
  CONFLICT: { status: 409, hint: "The object is not in a state that allows this." },
  IDEMPOTENCY_KEY_INVALID: {
    status: 400,
    hint: "Send an Idempotency-Key of 1 to 255 printable ASCII characters (no control characters, nothing beyond ASCII), such as a UUID; a new one for each thing you mean to create.",
  },
  IDEMPOTENCY_KEY_REUSED: {
    status: 409,
    hint: "This Idempotency-Key was sent before with another body: send a new key for a new request; the same key only to retry the very same request.",
  },
  IDEMPOTENCY_KEY_IN_USE: {
    status: 409,
    hint: "The first request with this Idempotency-Key is still being answered: wait for the seconds in the Retry-After header and send it again with the same key.",
  },
  INTERNAL: { status: 500, hint: "This is a bug in runyard; please report it with the log." },
  USERNAME_TAKEN: {
    status: 409,
    hint: "Usernames are unique across the whole server, whatever the tenant (a login names no tenant): pick another name.",
  },
  RUNNER_ID_TAKEN: {
    status: 409,
    hint: "Another runner token registered this runner id; pick another --id (RUNYARD_RUNNER_ID), or revoke the old token to free the id.",
  },
  RUNNER_TENANT_MISMATCH: {
    status: 403,
    hint: "The runner token decides the tenant: unset RUNYARD_TENANT_ID (ADOS_TENANT_ID) on the runner, set it to the token's tenant, or use a token of the tenant you meant.",
  },
  RUNNER_SHARED_TENANT: {
    status: 403,
    hint: "A runner of a tenant serves that tenant alone and cannot be shared: drop --shared (RUNYARD_SHARED), or start the shared runner with a runner token made without --tenant.",
  },
  RUNNER_CANNOT_ISOLATE: {
    status: 400,
    hint: "A shared runner must keep each run from the others: install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap) where the runner runs and check that `bwrap` works there, or start it without --shared (RUNYARD_SHARED).",
  },
  HOME_LOCKED: {
    status: 409,
    hint: "Another runyard process uses this home folder; stop it first, or give this one its own --home (RUNYARD_HOME).",
  },
  ADDRESS_IN_USE: {
    status: 200,
    hint: "Stop what holds the port, or choose another with --port N (RUNYARD_PORT).",
  },
  SECRET_KEY_MISMATCH: {
    status: 500,
    hint: "The database was encrypted with another key: start with the RUNYARD_SECRET_KEY (or the <home>/secret.key file) it was created with.",
  },
  BODY_TOO_LARGE: {
    status: 413,
    hint: "Send the workflow text and small vars; pass big data to steps as files (or a URL), not in the request.",
  },
  EXPORT_TOO_LARGE: {
    status: 200,
    hint: "Keep an exported value under 1 MiB: write big data to a file and export its path instead.",
  },
  STORE_UNREADABLE: {
    status: 500,
    hint: "runyard leaves the file as it is: move it aside (or restore a backup) and start again to get a new database.",
  },
  STORE_UNREACHABLE: {
    status: 500,
    hint: "Check that PostgreSQL runs at that host and port, that this machine may connect to it, and the user, password and database name in RUNYARD_DATABASE_URL.",
  },
  STORE_UNAVAILABLE: {
    status: 503,
    hint: "The server lost its database for a moment (a restart or a failover): send the request again after the Retry-After seconds; GET /health/ready answers 200 once the database is back.",
  },
  SECRET_MISSING: {
    status: 400,
    hint: "Store it for the run's tenant with `runyard secret set NAME` (the value on stdin), or give it as a variable.",
  },
  SERVER_STOPPING: {
    status: 503,
    hint: "The server stopped before the run ended; the run goes on after its next start (or on another replica): follow it by its run_id, e.g. GET /api/runs/<run_id>/events.",
  },
  REPLICA_FENCED: {
    status: 409,
    hint: "Another server replica adopted this run after this one was presumed dead; this replica stops and leaves the run to it.",
  },
  STORE_TOO_NEW: {
    status: 503,
    hint: "A newer runyard migrated this database past what this one may write: upgrade to the release the message names (docs/upgrading.md). A replica that meets this while it runs still answers reads; runyard never downgrades a schema.",
  },
  UPGRADE_BLOCKED: {
    status: 503,
    hint: "A pending migration changes what the running older replicas write, so it cannot run beside them: stop every replica of the older runyard first (scale it to 0, or roll out with the Recreate strategy), then start this one: it migrates as it starts (docs/upgrading.md).",
  },
  WORKSPACE_BRANCH_EXISTS: {
    status: 409,
    hint: "The branch is already on the remote: pick another branch name, or continue it as a follow-up turn (reuse).",
  },
  TRIGGER_OWNER_REMOVED: {
    status: 410,
    hint: "The user who made this hook was removed, and what a removed user made starts no run: a tenant admin makes the hook again (`runyard hook rm NAME`, then `runyard hook create NAME --workflow W ...`) and gives the sender its new URL and secret.",
  },
  WORKSPACE_BRANCH_EXPIRED: {
    status: 410,
    hint: "Submit a new run instead: the last turn's diff.patch artifact holds the conversation's whole change (`git apply` it, or give it to the new run). A pushed branch (--push) outlives the runner's copy.",
  },
  WORKSPACE_BASE_MISSING: {
    status: 400,
    hint: "Name a base branch the remote has (the message lists them), or leave it out to start from the default branch.",
  },
  WORKSPACE_AUTH: {
    status: 200,
    hint: "Check the git token (or SSH key) for this repo: it must exist, be unexpired and may read and push to it.",
  },
  WORKSPACE_PUSH_REJECTED: {
    status: 200,
    hint: "The remote branch moved on (not a fast-forward) or a rule refused the push: push to a new branch, or fetch and rebase first.",
  },
  WORKSPACE_UNREACHABLE: {
    status: 200,
    hint: "git could not reach the repo after every retry: check the URL, the network and the git server, then retry the run.",
  },
  WORKSPACE_GIT_FAILED: {
    status: 200,
    hint: "A git command failed: read its output in the message (the repo URL, a branch name or the disk are the usual causes).",
  },
  WORKSPACE_IN_USE: {
    status: 409,
    hint: "Another live run holds this worktree key: wait for it to end, or use another key.",
  },
  ARCHIVE_REJECTED: {
    status: 400,
    hint: "Rebuild the archive with relative paths inside one folder, no links pointing out, no devices, within the size and entry limits; nothing of it was extracted.",
  },
  BOT_BUILD_FAILED: {
    status: 200,
    hint: "Read the build's last lines in the message: a failing RUN step or a missing file in the context are the usual causes.",
  },
  BOT_IMAGE_NOT_FOUND: {
    status: 400,
    hint: "Check the image name and tag: the registry does not have them (push the image first, or fix the reference).",
  },
  BOT_REGISTRY_AUTH: {
    status: 200,
    hint: "The registry refused the credentials: check the registry username and password (or token) stored for this bot.",
  },
  BOT_RESTART_LOOP: {
    status: 200,
    hint: "The bot crashed again after each restart: read its last logs (kept from the previous container) and fix the cause before starting it again.",
  },
  BOT_START_FAILED: {
    status: 200,
    hint: "Docker could not start the bot's container: read the message; the image's command or user may not fit the hardened settings.",
  },
  BOT_CONTAINER_LOST: {
    status: 200,
    hint: "The bot's container went away outside runyard (removed by hand?); start the bot again.",
  },
  BOT_NO_RUNNER: {
    status: 503,
    hint: "Start a runner on a host with Docker (`runyard runner` advertises the docker label when it can reach the engine), in the bot's group if it names one.",
  },
  JOB_REFUSED: {
    status: 200,
    hint: "Every runner offered the job refused it (the message names each and why): start a runner that has what the job needs (Docker for bots and `executor: docker` hosts, the named agent installed for agent tasks), or change the job's group and labels to match one that does.",
  },
  BOT_UNHEALTHY: {
    status: 200,
    hint: "The bot's health check failed its retries in a row: read the last probe's output (`runyard bot status NAME`), fix the bot or its --health-cmd / --health-http, then update it.",
  },
  BOT_UPDATE_FAILED: {
    status: 409,
    hint: "The new version did not become healthy, so the old one keeps running: read the new container's last logs in the message, fix the cause and run `runyard bot update` again.",
  },
  BOT_REGISTRY_UNREACHABLE: {
    status: 200,
    hint: "Docker could not reach the registry: check its host and port, that it runs, and that the Docker host may connect to it.",
  },
  BOT_NOT_RUNNING: {
    status: 503,
    hint: "The bot has no running container, or its runner is not connected to this server: `runyard bot status NAME` says where it is; try again once it runs.",
  },
  KUBE_NO_CREDENTIALS: {
    status: 200,
    hint: "Give the runner cluster credentials as kubectl finds them: run it in a pod with a ServiceAccount (deploy/kubernetes), or set KUBECONFIG (or ~/.kube/config) and, for a context other than the current one, k8s_context in its config file.",
  },
  KUBE_UNREACHABLE: {
    status: 200,
    hint: "Check that the API server named in the message is up and that the runner can reach it (the kubeconfig's server:, a proxy, a firewall); `kubectl --kubeconfig FILE get jobs -n NAMESPACE` from the runner's machine tries the same. A turn it ended may be retried: it never ran twice.",
  },
  KUBE_UNAUTHORIZED: {
    status: 200,
    hint: "The cluster does not accept the runner's credentials: renew the token or certificate in its kubeconfig, or check that its ServiceAccount still exists.",
  },
  KUBE_FORBIDDEN: {
    status: 200,
    hint: "Bind the runner's ServiceAccount to the Role in deploy/kubernetes/runner-role.yaml in the runner's k8s_namespace.",
  },
  KUBE_NAMESPACE_MISSING: {
    status: 200,
    hint: "Create the namespace (`kubectl create namespace NAME`) or name an existing one in k8s_namespace; where the runner may not read namespaces, check the name and that its Role is bound there.",
  },
  KUBE_API_ERROR: {
    status: 200,
    hint: "The Kubernetes API refused a request for a reason the message gives; check the runner's k8s_* settings against what the cluster accepts (an admission policy, a quota).",
  },
  KUBE_IMAGE_PULL_FAILED: {
    status: 200,
    hint: "Check k8s_image: that the name and tag exist, that the cluster's nodes can reach its registry, and that a pull secret is set where it is private (k8s_pull_timeout says how long a pull may try).",
  },
  KUBE_UNSCHEDULABLE: {
    status: 200,
    hint: "No node could take the turn's pod within k8s_schedule_timeout: lower max_memory_mb / max_cpu_percent, add nodes, or check the workspace claim's node affinity; `kubectl describe pod` on a stuck pod says why.",
  },
  KUBE_POD_OOM_KILLED: {
    status: 200,
    hint: "The turn's pod went over its memory limit and was killed: raise max_memory_mb in the runner's config.",
  },
  KUBE_POD_EVICTED: {
    status: 200,
    hint: "The node evicted the turn's pod (its memory or disk ran short); run the task again, and give the nodes room or the pods smaller limits.",
  },
  KUBE_JOB_DELETED: {
    status: 200,
    hint: "Someone or something else deleted the turn's Job while it ran (kubectl delete, a namespace cleanup, a TTL controller); leave runyard's Jobs (label runyard.dev/runner-id) to the runner.",
  },
  BOT_HOOK_FAILED: {
    status: 502,
    hint: "The bot did not answer on its webhook port: check that it listens on 0.0.0.0 or 127.0.0.1 at the port given with --webhook, and answers within 10 s.",
  },
} as const satisfies Record<string, { status: number; hint: string }>;

export type ErrorCode = keyof typeof errorTable;

/** An error with a stable code, an HTTP status and a hint for the user. */
export class RunyardError extends Error {
  readonly code: ErrorCode;
  readonly hint: string;
  readonly status: number;
  readonly details: unknown;

  constructor(
    code: ErrorCode,
    message: string,
    options: { hint?: string; details?: unknown; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "RunyardError";
    this.code = code;
    this.hint = options.hint ?? errorTable[code].hint;
    this.status = errorTable[code].status;
    this.details = options.details;
  }

  toInfo(): ErrorInfo {
    return { code: this.code, message: this.message, hint: this.hint };
  }
}

export function errorInfo(code: ErrorCode, message: string, hint?: string): ErrorInfo {
  return { code, message, hint: hint ?? errorTable[code].hint };
}

/** Any thrown value as an ErrorInfo; unknown errors become INTERNAL. */
export function toErrorInfo(error: unknown): ErrorInfo {
  if (error instanceof RunyardError) return error.toInfo();
  const message = error instanceof Error ? error.message : String(error);
  return errorInfo("INTERNAL", message);
}
