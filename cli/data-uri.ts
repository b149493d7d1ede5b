// data: URIs (RFC 2397) carry files in task inputs and outputs: `k=@photo.png` sends
// a file, and `--output-dir` saves the ones an app returns.
import { extname } from "node:path";

const MIME_BY_EXTENSION: Readonly<Record<string, string>> = {
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  gif: "image/gif",
  webp: "image/webp",
  bmp: "image/bmp",
  tif: "image/tiff",
  tiff: "image/tiff",
  svg: "image/svg+xml",
  ico: "image/x-icon",
  wav: "audio/wav",
  mp3: "audio/mpeg",
  ogg: "audio/ogg",
  flac: "audio/flac",
  m4a: "audio/mp4",
  mp4: "video/mp4",
  webm: "video/webm",
  mov: "video/quicktime",
  txt: "text/plain",
  md: "text/markdown",
  csv: "text/csv",
  html: "text/html",
  json: "application/json",
  pdf: "application/pdf",
  zip: "application/zip",
  gz: "application/gzip",
  tar: "application/x-tar",
  npy: "application/octet-stream",
  safetensors: "application/octet-stream",
  bin: "application/octet-stream",
};

/** Preferred extension of a MIME type, where several map to it. */
const EXTENSION_BY_MIME: Readonly<Record<string, string>> = {
  ...Object.fromEntries(Object.entries(MIME_BY_EXTENSION).map(([ext, mime]) => [mime, ext])),
  "image/jpeg": "jpg",
  "image/tiff": "tiff",
  "audio/wav": "wav",
  "audio/x-wav": "wav",
  "audio/wave": "wav",
  "application/octet-stream": "bin",
  "text/plain": "txt",
};

/** Guesses a file's MIME type from its extension; application/octet-stream when unknown. */
export function mimeTypeForPath(path: string): string {
  return MIME_BY_EXTENSION[extname(path).slice(1).toLowerCase()] ?? "application/octet-stream";
}

/** A file extension (no dot) for a MIME type; "bin" when unknown. Parameters (";charset=…") are ignored. */
export function extensionForMimeType(mimeType: string): string {
  const base = mimeType.split(";")[0]?.trim().toLowerCase() ?? "";
  return EXTENSION_BY_MIME[base] ?? "bin";
}

/** Encodes bytes as a base64 data: URI. */
export function toDataUri(bytes: Uint8Array, mimeType: string): string {
  return `data:${mimeType};base64,${Buffer.from(bytes).toString("base64")}`;
}

export interface DataUri {
  /** The media type without parameters; "text/plain" when the URI names none (RFC 2397). */
  readonly mimeType: string;
  readonly bytes: Buffer;
}

/** Decodes a data: URI, base64 or percent-encoded; undefined when `text` is not one. */
export function parseDataUri(text: string): DataUri | undefined {
  const match = /^data:([^,]*),/is.exec(text);
  if (!match) return undefined;
  const params = (match[1] ?? "").split(";").map((p) => p.trim());
  const base64 = params.slice(1).some((p) => p.toLowerCase() === "base64");
  const mimeType = params[0] === "" || params[0] === undefined ? "text/plain" : params[0].toLowerCase();
  const payload = text.slice(match[0].length);
  if (base64) return { mimeType, bytes: Buffer.from(payload, "base64") };
  try {
    return { mimeType, bytes: Buffer.from(decodeURIComponent(payload), "utf8") };
  } catch {
    return undefined; // malformed percent-encoding: treat as a plain string
  }
}
