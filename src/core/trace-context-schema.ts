import { z } from "zod";
import type { TraceContext } from "./trace-context.js";

/** A job's trace context (trace-context.ts) as the runner protocol checks it. */
export const TraceContextSchema = z.object({
  traceparent: z.string().regex(/^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/),
  tracestate: z.string().max(512).optional(),
}) satisfies z.ZodType<TraceContext>;
