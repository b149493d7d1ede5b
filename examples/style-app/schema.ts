// The app's input contract: the OpenAPI document Cog would generate for this predictor, and the
// validation Cog's pydantic layer would apply (same 422 `detail` shape, same messages), so a
// client written against a real Cog image sees no difference.

/** Styles the app can apply. */
export const STYLES = ["sketch", "sepia", "posterize", "oil", "blur"] as const;
export type Style = (typeof STYLES)[number];

/** Encodings the output image can take. */
export const OUTPUT_FORMATS = ["jpeg", "png"] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** Validated input with defaults applied. */
export interface StyleInput {
  /** `data:` URI or http(s) URL of the image; undefined means the photo shipped with the app. */
  readonly image: string | undefined;
  readonly style: Style;
  /** Effect strength, 0 (subtle) to 1 (strong). */
  readonly strength: number;
  /** Longest side of the output, in pixels. */
  readonly size: number;
  /** Number of tiles the image is processed in; one progress step per tile. */
  readonly steps: number;
  readonly outputFormat: OutputFormat;
}

/** Bounds and defaults, shared by the schema and the validator so they cannot drift apart. */
export const LIMITS = {
  strength: { minimum: 0, maximum: 1, default: 0.6 },
  size: { minimum: 64, maximum: 512, default: 512 },
  steps: { minimum: 1, maximum: 32, default: 10 },
  style: { default: "sketch" as Style },
  outputFormat: { default: "jpeg" as OutputFormat },
} as const;

/** One entry of a 422 body, as FastAPI/pydantic (and so Cog) writes it. */
export interface ValidationErrorItem {
  loc: (string | number)[];
  msg: string;
  type: string;
  ctx?: Record<string, unknown>;
}

/** `components.schemas.Input`, in the shape Cog generates (enums as `allOf` references, `x-order`). */
export const INPUT_SCHEMA = {
  title: "Input",
  type: "object",
  properties: {
    image: {
      title: "Image",
      description: "Image to restyle, as a data: URI or an http(s) URL. Defaults to the photo shipped with the app.",
      type: "string",
      format: "uri",
      "x-order": 0,
    },
    style: {
      description: "Style to apply.",
      default: LIMITS.style.default,
      allOf: [{ $ref: "#/components/schemas/style" }],
      "x-order": 1,
    },
    strength: {
      title: "Strength",
      description: "How strong the effect is, from 0 (subtle) to 1 (strong).",
      type: "number",
      minimum: LIMITS.strength.minimum,
      maximum: LIMITS.strength.maximum,
      default: LIMITS.strength.default,
      "x-order": 2,
    },
    size: {
      title: "Size",
      description: "Longest side of the output image, in pixels.",
      type: "integer",
      minimum: LIMITS.size.minimum,
      maximum: LIMITS.size.maximum,
      default: LIMITS.size.default,
      "x-order": 3,
    },
    steps: {
      title: "Steps",
      description: "Number of tiles the image is processed in (one progress step each).",
      type: "integer",
      minimum: LIMITS.steps.minimum,
      maximum: LIMITS.steps.maximum,
      default: LIMITS.steps.default,
      "x-order": 4,
    },
    output_format: {
      description: "Encoding of the output image.",
      default: LIMITS.outputFormat.default,
      allOf: [{ $ref: "#/components/schemas/output_format" }],
      "x-order": 5,
    },
  },
} as const;

const STATUS_ENUM = ["starting", "processing", "succeeded", "canceled", "failed"];
const WEBHOOK_EVENTS = ["start", "output", "logs", "completed"];

/** The whole `GET /openapi.json` document. */
export function openApiDocument(): Record<string, unknown> {
  const json = (schema: unknown) => ({ "application/json": { schema } });
  const predictionResponses = {
    "200": { description: "Successful Response", content: json({ $ref: "#/components/schemas/PredictionResponse" }) },
    "202": { description: "Accepted (with Prefer: respond-async)", content: json({ $ref: "#/components/schemas/PredictionResponse" }) },
    "409": { description: "Another prediction is running" },
    "422": { description: "Validation Error", content: json({ $ref: "#/components/schemas/HTTPValidationError" }) },
  };
  const predictionBody = { content: json({ $ref: "#/components/schemas/PredictionRequest" }) };
  const idParam = { name: "prediction_id", in: "path", required: true, schema: { title: "Prediction ID", type: "string" } };
  return {
    openapi: "3.0.2",
    info: { title: "Cog", version: "0.1.0", description: "NGPU demo app: image style transfer (sharp/libvips)" },
    paths: {
      "/": { get: { summary: "Root", operationId: "root__get", responses: { "200": { description: "Successful Response" } } } },
      "/health-check": {
        get: { summary: "Healthcheck", operationId: "healthcheck_health_check_get", responses: { "200": { description: "Successful Response" } } },
      },
      "/predictions": {
        post: { summary: "Predict", operationId: "predict_predictions_post", requestBody: predictionBody, responses: predictionResponses },
      },
      "/predictions/{prediction_id}": {
        put: {
          summary: "Predict Idempotent",
          operationId: "predict_idempotent_predictions__prediction_id__put",
          parameters: [idParam],
          requestBody: { ...predictionBody, required: true },
          responses: predictionResponses,
        },
      },
      "/predictions/{prediction_id}/cancel": {
        post: {
          summary: "Cancel",
          operationId: "cancel_predictions__prediction_id__cancel_post",
          parameters: [idParam],
          responses: { "200": { description: "Successful Response" }, "404": { description: "No such running prediction" } },
        },
      },
      "/shutdown": {
        post: { summary: "Start Shutdown", operationId: "start_shutdown_shutdown_post", responses: { "200": { description: "Successful Response" } } },
      },
    },
    components: {
      schemas: {
        Input: INPUT_SCHEMA,
        Output: { title: "Output", type: "string", format: "uri" },
        style: { title: "style", description: "An enumeration.", enum: [...STYLES], type: "string" },
        output_format: { title: "output_format", description: "An enumeration.", enum: [...OUTPUT_FORMATS], type: "string" },
        Status: { title: "Status", description: "An enumeration.", enum: STATUS_ENUM, type: "string" },
        WebhookEvent: { title: "WebhookEvent", description: "An enumeration.", enum: WEBHOOK_EVENTS, type: "string" },
        PredictionRequest: {
          title: "PredictionRequest",
          type: "object",
          properties: {
            input: { $ref: "#/components/schemas/Input" },
            id: { title: "Id", type: "string" },
            created_at: { title: "Created At", type: "string", format: "date-time" },
            output_file_prefix: { title: "Output File Prefix", type: "string" },
            webhook: { title: "Webhook", maxLength: 65536, minLength: 1, type: "string", format: "uri" },
            webhook_events_filter: {
              type: "array",
              items: { $ref: "#/components/schemas/WebhookEvent" },
              default: WEBHOOK_EVENTS,
            },
          },
        },
        PredictionResponse: {
          title: "PredictionResponse",
          type: "object",
          properties: {
            input: { $ref: "#/components/schemas/Input" },
            output: { $ref: "#/components/schemas/Output" },
            id: { title: "Id", type: "string" },
            version: { title: "Version", type: "string" },
            created_at: { title: "Created At", type: "string", format: "date-time" },
            started_at: { title: "Started At", type: "string", format: "date-time" },
            completed_at: { title: "Completed At", type: "string", format: "date-time" },
            logs: { title: "Logs", type: "string", default: "" },
            error: { title: "Error", type: "string" },
            status: { $ref: "#/components/schemas/Status" },
            metrics: { title: "Metrics", type: "object" },
          },
        },
        ValidationError: {
          title: "ValidationError",
          required: ["loc", "msg", "type"],
          type: "object",
          properties: {
            loc: { title: "Location", type: "array", items: { anyOf: [{ type: "string" }, { type: "integer" }] } },
            msg: { title: "Message", type: "string" },
            type: { title: "Error Type", type: "string" },
          },
        },
        HTTPValidationError: {
          title: "HTTPValidationError",
          type: "object",
          properties: { detail: { title: "Detail", type: "array", items: { $ref: "#/components/schemas/ValidationError" } } },
        },
      },
    },
  };
}

type Result = { ok: true; value: StyleInput } | { ok: false; detail: ValidationErrorItem[] };

/**
 * Validates a prediction's `input` object and applies defaults. Unknown keys are ignored, as
 * Cog does. Errors carry `loc: ["body", "input", <field>]` like FastAPI's.
 */
export function validateInput(raw: unknown): Result {
  const detail: ValidationErrorItem[] = [];
  if (raw === undefined || raw === null) raw = {};
  if (typeof raw !== "object" || Array.isArray(raw)) {
    return { ok: false, detail: [{ loc: ["body", "input"], msg: "value is not a valid dict", type: "type_error.dict" }] };
  }
  const obj = raw as Record<string, unknown>;
  const loc = (field: string) => ["body", "input", field];

  let image: string | undefined;
  if (obj.image !== undefined && obj.image !== null) {
    if (typeof obj.image !== "string") {
      detail.push({ loc: loc("image"), msg: "str type expected", type: "type_error.str" });
    } else if (!/^(data:|https?:\/\/)/i.test(obj.image)) {
      detail.push({ loc: loc("image"), msg: "invalid or missing URL scheme", type: "value_error.url.scheme" });
    } else {
      image = obj.image;
    }
  }

  const enumField = <T extends string>(field: string, allowed: readonly T[], fallback: T): T => {
    const v = obj[field];
    if (v === undefined || v === null) return fallback;
    if (typeof v === "string" && (allowed as readonly string[]).includes(v)) return v as T;
    detail.push({
      loc: loc(field),
      msg: `value is not a valid enumeration member; permitted: ${allowed.map((a) => `'${a}'`).join(", ")}`,
      type: "type_error.enum",
      ctx: { enum_values: [...allowed] },
    });
    return fallback;
  };

  const numberField = (field: string, limits: { minimum: number; maximum: number; default: number }, integer: boolean): number => {
    const v = obj[field];
    if (v === undefined || v === null) return limits.default;
    if (typeof v !== "number" || !Number.isFinite(v) || (integer && !Number.isInteger(v))) {
      detail.push(
        integer
          ? { loc: loc(field), msg: "value is not a valid integer", type: "type_error.integer" }
          : { loc: loc(field), msg: "value is not a valid float", type: "type_error.float" },
      );
      return limits.default;
    }
    if (v < limits.minimum) {
      detail.push({
        loc: loc(field),
        msg: `ensure this value is greater than or equal to ${limits.minimum}`,
        type: "value_error.number.not_ge",
        ctx: { limit_value: limits.minimum },
      });
    } else if (v > limits.maximum) {
      detail.push({
        loc: loc(field),
        msg: `ensure this value is less than or equal to ${limits.maximum}`,
        type: "value_error.number.not_le",
        ctx: { limit_value: limits.maximum },
      });
    }
    return v;
  };

  const style = enumField("style", STYLES, LIMITS.style.default);
  const strength = numberField("strength", LIMITS.strength, false);
  const size = numberField("size", LIMITS.size, true);
  const steps = numberField("steps", LIMITS.steps, true);
  const outputFormat = enumField("output_format", OUTPUT_FORMATS, LIMITS.outputFormat.default);
  if (detail.length > 0) return { ok: false, detail };
  return { ok: true, value: { image, style, strength, size, steps, outputFormat } };
}
