// Playwright drives a real Chromium against real `palimpsest serve` processes
// that the fixtures start (port 0, a temporary SQLite file each). Run with
// `npm run test:e2e`, which builds first; see e2e/README.md.

import { defineConfig } from '@playwright/test';

export default defineConfig({
  testDir: '.',
  testMatch: '**/*.spec.ts',
  outputDir: '../test-results/e2e',
  // Every test starts its own server(s); two workers match the two cores these run on.
  workers: 2,
  fullyParallel: true,
  forbidOnly: !!process.env.CI,
  // Each test starts its own servers and browsers on two shared cores; the slowest take about a minute there.
  timeout: 120_000,
  expect: { timeout: 15_000 },
  reporter: [['list'], ['html', { outputFolder: '../playwright-report', open: 'never' }]],
  use: {
    browserName: 'chromium',
    launchOptions: {
      // Playwright's own browser download is not used: any Chromium will do.
      executablePath: process.env.PALIMPSEST_CHROMIUM ?? '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
    },
    screenshot: 'only-on-failure',
    trace: 'retain-on-failure',
    viewport: { width: 1100, height: 760 },
  },
});
