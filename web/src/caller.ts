import type { AnswerOf } from "./api.js";

/** Who is logged in, as `GET /api/auth/whoami` says. */
export type Caller = AnswerOf<"whoami">;
