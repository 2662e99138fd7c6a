import { z } from "zod";
import { ErrorInfo, RunEvent, StepSummary } from "../core/events.js";

/**
 * Schemas `/openapi.json` names as components (`#/components/schemas/<id>`) instead of repeating
 * them inline; clients generated from the document get a named type for each. Route modules add
 * their own response schemas.
 */
export const apiSchemas = z.registry<{ id: string }>();
apiSchemas.add(RunEvent, { id: "RunEvent" });
apiSchemas.add(StepSummary, { id: "StepSummary" });
apiSchemas.add(ErrorInfo, { id: "ErrorInfo" });
