import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { isIP } from "node:net";
import { RunyardError } from "../../core/errors.js";
import { type OutboundPolicy, portOf } from "./outbound-policy.js";

/** One HTTP call, as the direct-host client and the notifier make it. */
export interface OutboundRequest {
  method: "GET" | "POST";
  url: string;
  headers: Record<string, string>;
  body?: string;
  signal: AbortSignal;
}

export interface OutboundAnswer {
  status: number;
  text: string;
}

/** A remote that sends more than this is cut off: the server never buffers without bound. */
const maxAnswerBytes = 32 * 1024 * 1024;

/**
 * Makes one HTTP call that reaches only what `policy` allows: an IP literal is checked before
 * connecting, a name through the policy's lookup, which checks the very addresses the socket
 * then connects to. A refusal rejects with the policy's DESTINATION_NOT_ALLOWED error; anything
 * else that goes wrong rejects as `fetch` would (an Error, the system code in its `cause`).
 */
export function guardedRequest(policy: OutboundPolicy, call: OutboundRequest): Promise<OutboundAnswer> {
  const url = new URL(call.url);
  const port = portOf(url);
  const hostname = url.hostname.replace(/^\[|\]$/g, "");
  if (isIP(hostname)) {
    const refusal = policy.refusalAt({ hostname, port, address: hostname });
    if (refusal) return Promise.reject(refusal);
  }
  const send = url.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const request = send(
      url,
      {
        method: call.method,
        headers: {
          ...call.headers,
          ...(call.body === undefined ? {} : { "content-length": String(Buffer.byteLength(call.body)) }),
        },
        lookup: policy.lookupFor(port),
        signal: call.signal,
      },
      (response) => {
        readAnswer(response).then(
          (text) => resolve({ status: response.statusCode ?? 0, text }),
          (error: unknown) => reject(error),
        );
      },
    );
    request.on("error", (error) => reject(asFetchError(error)));
    request.end(call.body);
  });
}

function readAnswer(response: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    response.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxAnswerBytes) {
        response.destroy(new Error(`the answer is larger than ${maxAnswerBytes} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    response.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    response.on("error", (error) => reject(asFetchError(error)));
    response.on("aborted", () => reject(new Error("the answer was cut off")));
  });
}

/** A socket error shaped like fetch's (`TypeError` with the system error as `cause`); others as they are. */
function asFetchError(error: Error): Error {
  if (error.name === "AbortError" || error instanceof RunyardError) return error;
  return new Error("fetch failed", { cause: error });
}
