// The model: loads an image, restyles it tile by tile with libvips (through sharp) and encodes the
// result. Working in horizontal bands is what makes progress real: each band is a step, reported
// with a tqdm line, and a cancel takes effect between bands, the way a diffusion model stops
// between denoising steps.
import { readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import sharp from "sharp";
import type { OutputFormat, Style, StyleInput } from "./schema.js";
import { formatTqdm } from "./tqdm.js";

/** Raised for problems with the input that only show once we try to use it (bad image bytes). */
export class PredictError extends Error {
  override readonly name = "PredictError";
}

/** Largest image download we accept, in bytes. */
const MAX_IMAGE_BYTES = 25 * 1024 * 1024;
/** Largest decoded image we accept, in pixels (a guard against decompression bombs). */
const MAX_INPUT_PIXELS = 60_000_000;
/** How long an http(s) image download may take, in ms. */
const FETCH_TIMEOUT_MS = 30_000;
const CHANNELS = 3;

export interface PredictorOptions {
  /** Pause after each tile, in ms: stands in for GPU time per step and sets the demo's pace. */
  readonly stepDelayMs: number;
}

export interface PredictContext {
  readonly signal: AbortSignal;
  /** Appends one line to the prediction's logs. */
  readonly log: (line: string) => void;
}

export interface Predictor {
  /** Runs one prediction and returns the output image as a data URI. */
  predict(input: StyleInput, ctx: PredictContext): Promise<string>;
}

interface RawImage {
  readonly data: Buffer;
  readonly width: number;
  readonly height: number;
}

/**
 * Loads the shipped photo and warms libvips up (decoding it once), then returns the predictor.
 * @param photoUrl location of the default photo
 * @param log receives setup log lines
 */
export async function setupPredictor(photoUrl: URL, options: PredictorOptions, log: (line: string) => void): Promise<Predictor> {
  const defaultPhoto = await readFile(photoUrl);
  const meta = await sharp(defaultPhoto).metadata();
  // A first decode pays libvips' one-off initialisation here rather than in the first prediction.
  await sharp(defaultPhoto).resize(64).raw().toBuffer();
  log(`loaded default photo ${photoUrl.pathname.split("/").pop() ?? ""} (${meta.width}x${meta.height} ${meta.format})`);
  log(`libvips ${sharp.versions.vips}, sharp ${sharp.versions.sharp ?? "?"}`);

  return {
    async predict(input, ctx) {
      const { signal, log } = ctx;
      const started = performance.now();
      const { bytes, source } = await loadImageBytes(input.image, defaultPhoto, signal);
      const base = await decode(bytes, input.size);
      log(`input ${source}, ${base.width}x${base.height} after resize to ${input.size}px`);
      log(`style ${input.style}, strength ${input.strength.toFixed(2)}, ${input.steps} tiles`);

      const out = Buffer.alloc(base.data.length);
      const bands = splitBands(base.height, input.steps);
      const loopStart = performance.now();
      log(formatTqdm(0, bands.length, 0));
      for (const [i, band] of bands.entries()) {
        signal.throwIfAborted();
        const styled = await styleBand(base, band.top, band.height, input.style, input.strength);
        styled.copy(out, band.top * base.width * CHANNELS);
        if (options.stepDelayMs > 0) await sleep(options.stepDelayMs, undefined, { signal });
        log(formatTqdm(i + 1, bands.length, performance.now() - loopStart));
      }
      signal.throwIfAborted();

      const encodeStart = performance.now();
      const encoded = await encode({ data: out, width: base.width, height: base.height }, input.outputFormat);
      log(
        `encoded ${input.outputFormat} ${base.width}x${base.height}, ${(encoded.length / 1024).toFixed(1)} KiB in ${Math.round(performance.now() - encodeStart)} ms; ` +
          `total ${Math.round(performance.now() - started)} ms`,
      );
      return `data:image/${input.outputFormat};base64,${encoded.toString("base64")}`;
    },
  };
}

async function loadImageBytes(image: string | undefined, defaultPhoto: Buffer, signal: AbortSignal): Promise<{ bytes: Buffer; source: string }> {
  if (image === undefined) return { bytes: defaultPhoto, source: "default photo" };
  if (image.startsWith("data:")) return { bytes: decodeDataUri(image), source: "data URI" };
  const response = await fetch(image, { signal: AbortSignal.any([signal, AbortSignal.timeout(FETCH_TIMEOUT_MS)]) }).catch((err: unknown) => {
    // An abort is a cancel, not a bad input: let it through unchanged.
    if (signal.aborted) throw err;
    throw new PredictError(`could not download image: ${(err as Error).message}`, { cause: err });
  });
  if (!response.ok) throw new PredictError(`could not download image: HTTP ${response.status}`);
  const length = Number(response.headers.get("content-length") ?? "0");
  if (length > MAX_IMAGE_BYTES) throw new PredictError(`image is larger than ${MAX_IMAGE_BYTES} bytes`);
  const bytes = Buffer.from(await response.arrayBuffer());
  if (bytes.length > MAX_IMAGE_BYTES) throw new PredictError(`image is larger than ${MAX_IMAGE_BYTES} bytes`);
  return { bytes, source: new URL(image).host };
}

/** Decodes `data:[<media type>][;base64],<data>` (RFC 2397). */
function decodeDataUri(uri: string): Buffer {
  const comma = uri.indexOf(",");
  if (comma < 0) throw new PredictError("malformed data URI: no comma");
  const meta = uri.slice(5, comma);
  const payload = uri.slice(comma + 1);
  const bytes = meta.split(";").includes("base64") ? Buffer.from(payload, "base64") : Buffer.from(decodeURIComponent(payload), "latin1");
  if (bytes.length === 0) throw new PredictError("data URI is empty");
  if (bytes.length > MAX_IMAGE_BYTES) throw new PredictError(`image is larger than ${MAX_IMAGE_BYTES} bytes`);
  return bytes;
}

async function decode(bytes: Buffer, size: number): Promise<RawImage> {
  try {
    const { data, info } = await sharp(bytes, { limitInputPixels: MAX_INPUT_PIXELS })
      .rotate() // honour EXIF orientation, as a photo viewer would
      .resize({ width: size, height: size, fit: "inside" })
      .removeAlpha()
      .toColourspace("srgb")
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== CHANNELS) throw new PredictError(`unexpected channel count ${info.channels}`);
    return { data, width: info.width, height: info.height };
  } catch (err) {
    if (err instanceof PredictError) throw err;
    throw new PredictError(`could not decode image: ${(err as Error).message}`, { cause: err });
  }
}

function splitBands(height: number, steps: number): { top: number; height: number }[] {
  const n = Math.max(1, Math.min(steps, height));
  const bands: { top: number; height: number }[] = [];
  for (let i = 0; i < n; i++) {
    const top = Math.round((i * height) / n);
    const bottom = Math.round(((i + 1) * height) / n);
    bands.push({ top, height: bottom - top });
  }
  return bands;
}

/** Filter parameters for a style at a strength, scaled so the look does not depend on output size. */
function styleParams(style: Style, strength: number, longSide: number) {
  const scale = longSide / 512;
  switch (style) {
    case "blur":
      return { sigma: Math.max(0.3, (0.5 + strength * 7.5) * scale) };
    case "sketch":
      return { sigma: Math.max(0.3, (1.5 + strength * 6) * scale) };
    case "posterize":
      return { sigma: Math.max(0.3, 0.8 * scale), levels: Math.round(12 - strength * 10) };
    case "oil":
      // Median windows must be odd.
      return { window: 2 * Math.max(1, Math.round((1 + strength * 3) * scale)) + 1 };
    case "sepia":
      return {};
  }
}

/** Pixels of context a filter needs around a band so that band edges do not show as seams. */
function padFor(params: { sigma?: number; window?: number }): number {
  if (params.sigma !== undefined) return Math.ceil(params.sigma * 3) + 1;
  if (params.window !== undefined) return params.window;
  return 0;
}

async function styleBand(base: RawImage, top: number, height: number, style: Style, strength: number): Promise<Buffer> {
  const params = styleParams(style, strength, Math.max(base.width, base.height));
  const pad = padFor(params);
  const padTop = Math.min(pad, top);
  const padBottom = Math.min(pad, base.height - top - height);
  const region = { left: 0, top: top - padTop, width: base.width, height: height + padTop + padBottom };
  const rowBytes = base.width * CHANNELS;
  const src = base.data.subarray(region.top * rowBytes, (region.top + region.height) * rowBytes);
  const img = () => sharp(src, { raw: { width: region.width, height: region.height, channels: CHANNELS } });

  let styled: Buffer;
  switch (style) {
    case "sepia": {
      const s = strength;
      // Classic sepia matrix, blended with the identity by strength.
      const m = [
        [0.393, 0.769, 0.189],
        [0.349, 0.686, 0.168],
        [0.272, 0.534, 0.131],
      ];
      const matrix = m.map((row, r) => row.map((v, c) => (1 - s) * (r === c ? 1 : 0) + s * v)) as [
        [number, number, number],
        [number, number, number],
        [number, number, number],
      ];
      styled = await img().recomb(matrix).raw().toBuffer();
      break;
    }
    case "blur":
      styled = await img().blur(params.sigma).raw().toBuffer();
      break;
    case "oil":
      styled = await img()
        .median(params.window)
        .modulate({ saturation: 1 + 0.6 * strength })
        .raw()
        .toBuffer();
      break;
    case "posterize": {
      styled = await img().blur(params.sigma).raw().toBuffer();
      const levels = params.levels ?? 4;
      const step = 255 / (levels - 1);
      for (let i = 0; i < styled.length; i++) styled[i] = Math.round(Math.round((styled[i] ?? 0) / step) * step);
      break;
    }
    case "sketch": {
      // Pencil sketch: grey image colour-dodged with its blurred negative; strength thickens
      // the strokes and fades out the original colour.
      const grey = await img().toColourspace("b-w").raw().toBuffer();
      const blurredNegative = await sharp(grey, { raw: { width: region.width, height: region.height, channels: 1 } })
        .negate()
        .blur(params.sigma)
        // libvips hands single-band raw input back as sRGB unless told otherwise.
        .toColourspace("b-w")
        .raw()
        .toBuffer();
      const colourWeight = 0.35 * (1 - strength);
      styled = Buffer.alloc(src.length);
      for (let p = 0; p < grey.length; p++) {
        const g = grey[p] ?? 0;
        const b = blurredNegative[p] ?? 0;
        const dodge = Math.min(255, (g * 255) / (256 - b));
        for (let c = 0; c < CHANNELS; c++) {
          const i = p * CHANNELS + c;
          styled[i] = Math.round(dodge * (1 - colourWeight) + (src[i] ?? 0) * colourWeight);
        }
      }
      break;
    }
  }
  if (styled.length !== src.length) throw new Error(`style ${style} produced ${styled.length} bytes, expected ${src.length}`);
  return styled.subarray(padTop * rowBytes, (padTop + height) * rowBytes);
}

async function encode(image: RawImage, format: OutputFormat): Promise<Buffer> {
  const pipeline = sharp(image.data, { raw: { width: image.width, height: image.height, channels: CHANNELS } });
  return format === "png" ? pipeline.png({ compressionLevel: 6 }).toBuffer() : pipeline.jpeg({ quality: 85 }).toBuffer();
}
