import { afterAll } from "vitest";
import { removeTempDirs } from "./cli.js";

// Registered before the file's own hooks, so it runs after them: its servers are stopped first.
afterAll(removeTempDirs);
