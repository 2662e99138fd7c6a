/**
 * The workflow format's hello workflow, what the editor starts with. Its host
 * `local` there has the address of an agent-server; here it has none, so the step runs on a
 * runner of this server, such as the one `runyard up` starts.
 */
export const helloWorkflow = `version: v0.1
name: demo
inventory:
  hosts:
    local: {}
steps:
  - name: hello
    targets: [local]
    action: cmd.run
    args:
      cmd: |
        echo "hello"
`;
