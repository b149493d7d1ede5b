import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import { invalidArgument } from "../errors.js";

/**
 * Task inputs are checked against the app's input schema (JSON Schema, as Cog
 * publishes in /openapi.json) before a task is queued, so a bad input fails at
 * submit time instead of on a GPU.
 */
export interface InputSchemaValidator {
  /** Throws INVALID_ARGUMENT naming the first offending field. */
  check(appId: string, version: number, schema: Record<string, unknown> | null, input: Record<string, unknown>): void;
  /** Throws INVALID_ARGUMENT if the schema itself is not usable. */
  compile(field: string, schema: Record<string, unknown>): void;
}

export function createInputSchemaValidator(): InputSchemaValidator {
  // Cog schemas carry vendor keywords ("x-order") and OpenAPI-only ones ("nullable"): not strict.
  const ajv = new Ajv({ strict: false, allErrors: false, validateFormats: false });
  const cache = new Map<string, { schemaText: string; validate: ValidateFunction }>();

  const build = (schema: Record<string, unknown>) => ajv.compile(schema);

  return {
    check(appId, version, schema, input) {
      if (!schema) return;
      const key = `${appId}@${version}`;
      const schemaText = JSON.stringify(schema);
      let entry = cache.get(key);
      if (!entry || entry.schemaText !== schemaText) {
        try {
          entry = { schemaText, validate: build(schema) };
        } catch {
          // A schema we cannot compile must not block the app: the app validates again itself.
          return;
        }
        cache.set(key, entry);
        if (cache.size > 1000) cache.delete(cache.keys().next().value!);
      }
      if (!entry.validate(input)) throw describe(entry.validate.errors ?? []);
    },
    compile(field, schema) {
      try {
        build(schema);
      } catch (err) {
        throw invalidArgument(field, `is not a valid JSON Schema: ${(err as Error).message}`);
      }
    },
  };
}

function describe(errors: ErrorObject[]) {
  const first = errors[0];
  if (!first) return invalidArgument("input", "does not match the app's input schema");
  const path = first.instancePath
    .split("/")
    .filter(Boolean)
    .map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"));
  if (first.keyword === "required") path.push(String((first.params as { missingProperty?: string }).missingProperty));
  if (first.keyword === "additionalProperties") path.push(String((first.params as { additionalProperty?: string }).additionalProperty));
  const field = ["input", ...path].join(".");
  const detail =
    first.keyword === "enum"
      ? `must be one of ${JSON.stringify((first.params as { allowedValues?: unknown[] }).allowedValues)}`
      : first.keyword === "required"
        ? "is required"
        : first.keyword === "additionalProperties"
          ? "is not an input of this app"
          : (first.message ?? "is invalid");
  return invalidArgument(field, detail);
}
