/** A page of a list call: its items and the token of the next page ("" on the last page). */
export interface Page<T> {
  readonly items: readonly T[];
  readonly nextPageToken: string;
}

/**
 * Yields the items of every page, fetching pages lazily as the caller iterates.
 * Stops on an empty token, and also when a server hands back a token it already gave
 * (a broken server must not turn a `for await` into an endless loop).
 */
export async function* paginate<T>(fetchPage: (pageToken: string) => Promise<Page<T>>): AsyncGenerator<T, void, undefined> {
  const seen = new Set<string>();
  let token = "";
  for (;;) {
    const page = await fetchPage(token);
    yield* page.items;
    if (page.nextPageToken === "" || seen.has(page.nextPageToken)) return;
    seen.add(page.nextPageToken);
    token = page.nextPageToken;
  }
}
