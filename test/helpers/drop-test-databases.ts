import { afterAll } from "vitest";
import { dropMadeDatabases } from "./postgres-cluster.js";

// Registered before the file's own hooks, so it runs after them: the stores and servers using
// the file's databases are closed first (and any connection left is ended by the drop).
afterAll(dropMadeDatabases);
