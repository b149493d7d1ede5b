import { css, LitElement, unsafeCSS } from "lit";
import uPlot from "uplot";
import uplotCss from "uplot/dist/uPlot.min.css";

const MINUTE = 60;
const HOUR = 3600;
const DAY = 86400;
const TIME_INCREMENTS = [1, 2, 5, 10, 15, 30, MINUTE, 2 * MINUTE, 5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY, 14 * DAY, 30 * DAY];

/** One line or bar of a chart. */
export interface ChartSeries {
  readonly label: string;
  readonly color: string;
  /** Values for the x positions; null where there is none. */
  readonly values: ReadonlyArray<number | null>;
  readonly scale?: string;
  readonly bars?: boolean;
}

export interface ChartAxis {
  readonly scale: string;
  readonly label: string;
  readonly side?: "left" | "right";
  readonly format?: (v: number) => string;
  readonly range?: [number, number];
}

/** A time-series chart (uPlot): x in Unix seconds. Set `.x`, `.series` and `.axes`; it redraws. */
export class NgpuChart extends LitElement {
  static override properties = {
    x: { attribute: false },
    series: { attribute: false },
    axes: { attribute: false },
    height: { type: Number },
    timeZone: { attribute: "time-zone" },
  };
  static override styles = [
    unsafeCSS(uplotCss),
    css`
      :host { display: block; width: 100%; }
      .u-legend { font-size: 12px; }
    `,
  ];
  declare x: readonly number[];
  declare series: readonly ChartSeries[];
  declare axes: readonly ChartAxis[];
  declare height: number;
  /** IANA zone for the time axis; default the browser's. */
  declare timeZone: string;
  private plot: uPlot | undefined;
  private shape = "";
  private resize = new ResizeObserver(() => this.plot?.setSize({ width: this.clientWidth || 600, height: this.height }));

  constructor() {
    super();
    this.x = [];
    this.series = [];
    this.axes = [];
    this.height = 220;
    this.timeZone = "";
  }

  override connectedCallback(): void {
    super.connectedCallback();
    this.resize.observe(this);
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.resize.disconnect();
    this.plot?.destroy();
    this.plot = undefined;
    this.shape = "";
  }

  protected override updated(): void {
    const data = [this.x, ...this.series.map((s) => s.values)] as unknown as uPlot.AlignedData;
    const shape = JSON.stringify([this.series.map((s) => [s.label, s.scale, s.bars]), this.axes.map((a) => a.scale), this.height, this.timeZone]);
    if (this.plot && shape === this.shape) {
      this.plot.setData(data);
      return;
    }
    this.plot?.destroy();
    this.shape = shape;
    const scales: uPlot.Scales = { x: { time: true } };
    for (const a of this.axes) scales[a.scale] = a.range ? { range: a.range } : { auto: true };
    this.plot = new uPlot(
      {
        width: this.clientWidth || 600,
        height: this.height,
        scales,
        ...(this.timeZone ? { tzDate: (ts: number) => uPlot.tzDate(new Date(ts * 1000), this.timeZone) } : {}),
        series: [
          {},
          ...this.series.map((s) => ({
            label: s.label,
            stroke: s.color,
            fill: s.bars ? `${s.color}cc` : `${s.color}22`,
            scale: s.scale ?? this.axes[0]?.scale ?? "y",
            width: s.bars ? 0 : 1.5,
            spanGaps: false,
            ...(s.bars ? { paths: uPlot.paths.bars!({ size: [0.7, 60] }), points: { show: false } } : {}),
          })),
        ],
        axes: [
          // Whole seconds at least: readings come once a second.
          { incrs: TIME_INCREMENTS, space: 60 },
          ...this.axes.map((a) => ({
            scale: a.scale,
            label: a.label,
            side: a.side === "right" ? 1 : 3,
            grid: { show: a.side !== "right" },
            size: 60,
            ...(a.format ? { values: (_u: uPlot, ticks: number[]) => ticks.map((t) => a.format!(t)) } : {}),
          })),
        ],
      },
      data,
      // The shadow root is no HTMLElement, which is all uPlot appends to by itself.
      (plot, init) => {
        this.renderRoot.appendChild(plot.root);
        init();
      },
    );
  }
}
customElements.define("ngpu-chart", NgpuChart);
