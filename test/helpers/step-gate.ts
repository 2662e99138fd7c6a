import { type AddressInfo, createServer, type Socket } from "node:net";

/**
 * A gate a step waits at on the loopback (a platform admin's run on an unshared runner has the
 * host's network) until the test opens it: a step held at a point of the test's choosing, not by
 * a sleep. `wait` is the step's line that waits (python3, so any shell runs it).
 */
export async function stepGate(): Promise<{
  port: number;
  wait: string;
  open: () => void;
  close: () => Promise<void>;
}> {
  const waiting: Socket[] = [];
  let opened = false;
  const server = createServer((socket) => {
    // A step killed while it waits resets its connection: nothing to tell the test.
    socket.on("error", () => undefined);
    if (opened) socket.end("go\n");
    else waiting.push(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    port,
    wait: `python3 -c "import socket; socket.create_connection(('127.0.0.1', ${port})).recv(1)"`,
    open: () => {
      opened = true;
      for (const socket of waiting.splice(0)) socket.end("go\n");
    },
    close: () => {
      for (const socket of waiting.splice(0)) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
