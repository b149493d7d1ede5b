import { describe, expect, it } from "vitest";
import { isPrivateAddress, privateTargetProblem } from "./target-guard.js";

describe("isPrivateAddress", () => {
  it("knows loopback, private, link-local, CGNAT, unique-local and mapped addresses from public ones", () => {
    for (const a of ["127.0.0.1", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "::1", "::", "fd00::1", "fe80::1", "::ffff:127.0.0.1", "224.0.0.1"]) {
      expect(isPrivateAddress(a), a).toBe(true);
    }
    for (const a of ["8.8.8.8", "172.32.0.1", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"]) {
      expect(isPrivateAddress(a), a).toBe(false);
    }
  });
});

describe("privateTargetProblem", () => {
  it("refuses private, loopback and link-local literals and localhost; lets public ones and other names through", () => {
    for (const url of ["http://127.0.0.1:8080/x", "http://169.254.169.254/latest/meta-data", "http://[::1]:9/x", "https://localhost/x", "http://api.localhost/x", "http://10.0.0.5/x"]) {
      expect(privateTargetProblem(url), url).toBeDefined();
    }
    for (const url of ["https://example.com/hook", "http://8.8.8.8/x", "http://[2606:4700:4700::1111]/x"]) {
      expect(privateTargetProblem(url), url).toBeUndefined();
    }
  });
});
