import { describe, expect, it } from "vitest";
import { lastProgress, parseProgressLine } from "../../../worker/runtime/parse-progress.js";

describe("parseProgressLine", () => {
  it("reads a tqdm line with timing and rate", () => {
    const p = parseProgressLine(" 40%|████      | 4/10 [00:01<00:01, 3.2it/s]");
    expect(p).toEqual({ percent: 40, step: 4, totalSteps: 10, message: "40%|████      | 4/10 [00:01<00:01, 3.2it/s]", etaMs: 1000 });
  });

  it("reads a finished bar with no timing part", () => {
    expect(parseProgressLine("100%|██████████| 50/50")).toMatchObject({ percent: 100, step: 50, totalSteps: 50 });
    expect(parseProgressLine("100%|██████████| 50/50")?.etaMs).toBeUndefined();
  });

  it("keeps a description label in the message and derives percent from the counts", () => {
    const p = parseProgressLine("Denoising:  33%|███▎      | 1/3 [00:00<00:01,  1.95it/s]");
    expect(p?.step).toBe(1);
    expect(p?.totalSteps).toBe(3);
    expect(p?.percent).toBeCloseTo(33.333, 2);
    expect(p?.message).toBe("Denoising:  33%|███▎      | 1/3 [00:00<00:01,  1.95it/s]");
  });

  it("reads the start line, whose remaining time is unknown", () => {
    const p = parseProgressLine("  0%|          | 0/10 [00:00<?, ?it/s]");
    expect(p).toMatchObject({ percent: 0, step: 0, totalSteps: 10 });
    expect(p?.etaMs).toBeUndefined();
  });

  it("reads slow bars (s/it), hour-long estimates and ascii bars", () => {
    expect(parseProgressLine(" 10%|#         | 1/10 [00:12<01:48, 12.00s/it]")).toMatchObject({ step: 1, totalSteps: 10, etaMs: 108_000 });
    expect(parseProgressLine(" 50%|#####     | 500/1000 [1:00:00<1:00:00,  0.14it/s]")?.etaMs).toBe(3_600_000);
  });

  it("scales unit-suffixed counts (downloads)", () => {
    const p = parseProgressLine(" 27%|██▋       | 1.20M/4.50M [00:01<00:02, 1.1MB/s]");
    expect(p).toMatchObject({ step: 1_200_000, totalSteps: 4_500_000 });
    expect(p?.percent).toBeCloseTo(26.667, 2);
  });

  it("clamps overshooting counters to 100%", () => {
    expect(parseProgressLine("100%|██████████| 11/10 [00:01<00:00]")?.percent).toBe(100);
  });

  it("returns undefined for lines with no progress bar", () => {
    for (const line of [
      "",
      "loading weights from /src/weights",
      "accuracy 40% on the test set",
      "4/10 done",
      "37it [00:01, 25.31it/s]",
      "encoded jpeg 512x331, 48.2 KiB in 12 ms",
    ]) {
      expect(parseProgressLine(line), line).toBeUndefined();
    }
  });
});

describe("lastProgress", () => {
  it("takes the latest bar from several lines, ignoring other output after it", () => {
    const text = "style sketch\n 10%|█         | 1/10 [00:00<00:02]\n 20%|██        | 2/10 [00:00<00:02]\nsome log line\n";
    expect(lastProgress(text)).toMatchObject({ step: 2, totalSteps: 10 });
  });

  it("splits tqdm's carriage-return redraws", () => {
    const text = "\r  0%|          | 0/4 [00:00<?, ?it/s]\r 25%|██▌       | 1/4 [00:00<00:01,  2.00it/s]\r 50%|█████     | 2/4 [00:01<00:01,  2.00it/s]";
    expect(lastProgress(text)).toMatchObject({ step: 2, totalSteps: 4, percent: 50 });
  });

  it("returns undefined when no line holds progress", () => {
    expect(lastProgress("hello\nworld\n")).toBeUndefined();
  });
});
