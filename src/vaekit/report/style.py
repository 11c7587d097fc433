"""The report's style sheet, inlined into every page: system fonts only, so that nothing is
fetched; a grid of figure cards on screen, one column and no cards on paper."""

CSS = """
:root {
  --ink: #1d2330; --muted: #5b6675; --line: #e2e6ec; --accent: #2f6fb3;
  --page: #f5f6f8; --card: #ffffff;
}
* { box-sizing: border-box; }
html {
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  font-size: 15px; line-height: 1.5; color: var(--ink); background: var(--page);
}
body { margin: 0; }
main { max-width: 1200px; margin: 0 auto; padding: 28px 24px 48px; }
header h1 { font-size: 1.75rem; margin: 0 0 2px; letter-spacing: -0.01em; }
header p { margin: 0; color: var(--muted); }
nav { margin: 14px 0 0; font-size: 0.9rem; }
nav a { color: var(--accent); text-decoration: none; margin-right: 14px; white-space: nowrap; }
nav a:hover { text-decoration: underline; }
h2 {
  font-size: 1.2rem; margin: 34px 0 4px; padding-bottom: 4px;
  border-bottom: 1px solid var(--line);
}
p.intro { color: var(--muted); margin: 4px 0 14px; max-width: 80ch; }
table.summary {
  border-collapse: collapse; background: var(--card); border: 1px solid var(--line);
  border-radius: 8px; width: 100%; max-width: 900px; font-variant-numeric: tabular-nums;
}
table.summary th {
  text-align: left; vertical-align: top; font-weight: 600; color: var(--muted);
  padding: 7px 16px; width: 15em;
}
table.summary td { padding: 7px 16px; }
table.summary tr + tr th, table.summary tr + tr td { border-top: 1px solid var(--line); }
table.summary tr.headline td { font-weight: 600; }
table.summary tr.flag td { color: #a4262c; font-weight: 600; }
code {
  font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
  font-size: 0.86em; overflow-wrap: anywhere;
}
.grid {
  display: grid; gap: 18px; align-items: start;
  grid-template-columns: repeat(auto-fill, minmax(min(100%, 520px), 1fr));
}
figure {
  margin: 0; background: var(--card); border: 1px solid var(--line); border-radius: 8px;
  padding: 14px 16px; display: flex; flex-direction: column;
}
figure.wide { grid-column: 1 / -1; }
figure img { display: block; max-width: 100%; height: auto; margin: 0 auto; }
figcaption { margin-top: 10px; font-size: 0.9rem; color: var(--muted); }
figcaption strong { color: var(--ink); }
p.note { color: var(--muted); font-style: italic; }
footer { margin-top: 40px; color: var(--muted); font-size: 0.85rem; }
@media (max-width: 640px) {
  main { padding: 16px 12px 32px; }
  table.summary th { width: auto; }
}
@media print {
  @page { size: A4; margin: 14mm 12mm; }
  html { background: #ffffff; font-size: 10pt; }
  main { max-width: none; padding: 0; }
  nav { display: none; }
  h2 { break-after: avoid; margin-top: 18pt; }
  .grid { display: block; }
  figure { border: none; padding: 0; margin: 0 0 14pt; break-inside: avoid; }
  figure img { max-height: 230mm; width: auto; }
  table.summary { border: none; break-inside: avoid; }
}
"""
