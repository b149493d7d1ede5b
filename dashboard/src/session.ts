// The signed-in API key lives in sessionStorage: gone when the tab closes, never sent anywhere but the API.
const KEY = "ngpu.apiKey";

export function savedKey(): string | null {
  return sessionStorage.getItem(KEY);
}

export function saveKey(key: string): void {
  sessionStorage.setItem(KEY, key);
}

export function forgetKey(): void {
  sessionStorage.removeItem(KEY);
}
