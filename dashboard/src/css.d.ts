// esbuild loads .css files as text (see dashboard/build.ts): uPlot's styles go into shadow roots.
declare module "*.css" {
  const text: string;
  export default text;
}
