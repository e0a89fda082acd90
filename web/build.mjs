// Builds the dashboard into dist/: index.html, app-<hash>.js, app-<hash>.css.
// The output is deterministic (CI rebuilds it and checks that dist/ is
// unchanged), minified, without source maps, and loads nothing from the
// internet at run time. `node build.mjs --watch` rebuilds on change (dev).
import * as esbuild from 'esbuild';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(fileURLToPath(import.meta.url));
const dist = join(root, 'dist');
const watch = process.argv.includes('--watch');

function hash(buf) {
  return createHash('sha256').update(buf).digest('hex').slice(0, 10);
}

async function build() {
  const js = await esbuild.build({
    entryPoints: [join(root, 'src/main.ts')],
    bundle: true,
    minify: true,
    sourcemap: false,
    format: 'iife',
    target: ['es2020'],
    legalComments: 'none',
    charset: 'utf8',
    write: false,
    logLevel: 'warning',
  });
  const jsText = js.outputFiles[0].contents;
  // uPlot's stylesheet is inlined ahead of ours so our rules win.
  const cssSrc =
    readFileSync(join(root, 'node_modules/uplot/dist/uPlot.min.css'), 'utf8') +
    '\n' +
    readFileSync(join(root, 'src/app.css'), 'utf8');
  const css = await esbuild.transform(cssSrc, { loader: 'css', minify: true, legalComments: 'none' });
  const jsName = `app-${hash(jsText)}.js`;
  const cssName = `app-${hash(css.code)}.css`;
  const html = readFileSync(join(root, 'src/index.html'), 'utf8')
    .replace('{{CSS}}', cssName)
    .replace('{{JS}}', jsName);
  rmSync(dist, { recursive: true, force: true });
  mkdirSync(dist, { recursive: true });
  writeFileSync(join(dist, jsName), jsText);
  writeFileSync(join(dist, cssName), css.code);
  writeFileSync(join(dist, 'index.html'), html);
  writeFileSync(join(dist, 'favicon.svg'), readFileSync(join(root, 'src/favicon.svg')));
  const size = (n) => `${(n / 1024).toFixed(1)} KiB`;
  console.log(`dist/${jsName} ${size(jsText.length)}, dist/${cssName} ${size(css.code.length)}, index.html ${size(html.length)}`);
}

await build();
if (watch) {
  const { watch: fsWatch } = await import('node:fs');
  let timer = null;
  fsWatch(join(root, 'src'), { recursive: true }, () => {
    clearTimeout(timer);
    timer = setTimeout(() => build().catch((e) => console.error(e.message)), 100);
  });
  console.log('watching src/ …');
}
