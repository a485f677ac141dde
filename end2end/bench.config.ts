import { defineConfig } from '@playwright/test';
import base from './playwright.config';

// The browser benchmark (bench/browser.sh): same server and Chromium as the tests.
export default defineConfig({
  ...base,
  testDir: './bench',
  timeout: 300_000,
});
