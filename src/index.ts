export * from "./core/errors.js";
export * from "./core/events.js";
export * from "./core/masking.js";
