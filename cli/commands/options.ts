/**
 * Commander argument parser of a repeatable option: collects every value in order.
 * No default array is declared, so help does not print "(default: [])"; read the
 * option with `?? []`.
 */
export function collect(value: string, previous: readonly string[] | undefined): string[] {
  return [...(previous ?? []), value];
}
