/**
 * `npm run bench -- copier [runs]`: Flotilla's copier against `skopeo copy`
 * (docker:// to docker://), side by side on the same registries of a bench
 * stack, runs interleaved (which tool goes first alternates):
 *
 *   cold   every blob new in the target: an image of ~290 MB in 6 layers of
 *          seeded random bytes (nothing compresses away), built and pushed to
 *          `central` here, copied to `cn-north`. After each cold run the target
 *          repository's blobs are unlinked, so neither tool can reuse them later
 *          (skopeo remembers where it saw a blob and would mount it from there).
 *   warm   every blob already in the target repository (in `cn-south`: were it in
 *          `cn-north`, skopeo would mount the cold copies' blobs from it).
 *   mount  to another repository of the same registry (`central`).
 *
 * Prints medians, throughput and ratios, the CPU each side used (the copier's
 * process, skopeo's, and the registries'), and writes reports/bench-copier.json.
 * Our copier runs in this process (as in the worker); skopeo is a process per copy.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { Copier, defaultCopierSettings } from '../activities/registry/copier.ts';
import { RegistryPool } from '../activities/registry/pool.ts';
import type { Registry } from '../model/registry.ts';
import { readState } from '../stack/process.ts';
import { buildDemoImages } from '../stack/images.ts';
import type { StackInfo } from '../stack/types.ts';
import { benchRoot, withBenchStack } from './support/stack.ts';
import { cpuMs, load, median, table } from './support/stats.ts';

const exec = promisify(execFile);
const LAYERS = 6;
const LAYER_MIB = 48;

interface Sample {
  ms: number;
  selfCpuMs: number;
  registryCpuMs: number;
}

async function skopeoCopy(src: string, dst: string): Promise<{ ms: number; cpuMs: number }> {
  const t0 = performance.now();
  // bash's `time` reports the child's CPU (user and system seconds).
  // prettier-ignore
  const { stderr } = await exec('bash', ['-c', `TIMEFORMAT='%U %S'; time skopeo copy --quiet --insecure-policy --src-tls-verify=false --dest-tls-verify=false docker://${src} docker://${dst}`], { timeout: 600_000 });
  const ms = performance.now() - t0;
  const [u, s] = stderr.trim().split(/\s+/).slice(-2).map(Number);
  return { ms, cpuMs: ((u ?? 0) + (s ?? 0)) * 1000 };
}

/** Removes a repository's links to the blobs and its manifest, so nothing can be reused from it. */
async function unlink(host: string, repo: string, digests: string[], manifest: string): Promise<void> {
  await fetch(`http://${host}/v2/${repo}/manifests/${manifest}`, { method: 'DELETE' });
  await Promise.all(digests.map((d) => fetch(`http://${host}/v2/${repo}/blobs/${d}`, { method: 'DELETE' })));
}

export async function main(args: string[]): Promise<void> {
  const runs = Number(args[0] ?? process.env.BENCH_RUNS ?? 5);
  await withBenchStack(
    async (stack: StackInfo) => {
      const host = (n: string) => stack.registries.find((r) => r.name === n)!.host;
      const central = host('central');
      const target = host('cn-north');
      // Warm copies go to another registry: skopeo would mount cold copies from a repository it saw holding the blobs.
      const warm = host('cn-south');
      const registries: Registry[] = stack.registries.map((r) => ({
        name: r.name,
        host: r.host,
        region: r.region,
        type: 'oci',
        tls: 'none',
      }));
      const pids = Object.entries(readState(stack.dataDir)?.processes ?? {})
        .filter(([k]) => k.startsWith('registry/'))
        .map(([, v]) => v.pid);
      const registryCpu = () => pids.reduce((a, p) => a + cpuMs(p), 0);

      // The image: built as an OCI layout, pushed with skopeo.
      const work = mkdtempSync(path.join(tmpdir(), 'bench-copier-'));
      const t0 = performance.now();
      const [img] = buildDemoImages(path.join(work, 'oci'), {
        repository: 'bench/big',
        tags: ['v1'],
        layers: LAYERS,
        layerSizeKiB: LAYER_MIB * 1024,
      });
      // prettier-ignore
      await exec('skopeo', ['copy', '--quiet', '--insecure-policy', '--dest-tls-verify=false', '--preserve-digests', `oci:${path.join(work, 'oci')}:v1`, `docker://${central}/bench/big:v1`], { timeout: 600_000 });
      rmSync(work, { recursive: true, force: true });
      const source = `${central}/bench/big:v1`;
      const raw = (await (
        await fetch(`http://${central}/v2/bench/big/manifests/v1`, { headers: { accept: img!.mediaType } })
      ).json()) as {
        config: { digest: string; size: number };
        layers: { digest: string; size: number }[];
      };
      const blobs = [raw.config, ...raw.layers];
      const bytes = blobs.reduce((a, b) => a + b.size, 0);
      process.stderr.write(
        `[bench] image ${source}: ${blobs.length} blobs, ${(bytes / 1e6).toFixed(0)} MB, ready in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`,
      );

      const log = pino({ level: 'warn' });
      const pool = new RegistryPool(registries, {}, log);
      const copier = new Copier(pool, defaultCopierSettings, log);
      const ours = async (dst: string): Promise<Sample> => {
        const c0 = process.cpuUsage();
        const r0 = registryCpu();
        const t = performance.now();
        await copier.copy({ source, target: dst });
        const ms = performance.now() - t;
        const c = process.cpuUsage(c0);
        return { ms, selfCpuMs: (c.user + c.system) / 1000, registryCpuMs: registryCpu() - r0 };
      };
      const theirs = async (dst: string): Promise<Sample> => {
        const r0 = registryCpu();
        const s = await skopeoCopy(source, `${dst}:v1`);
        return { ms: s.ms, selfCpuMs: s.cpuMs, registryCpuMs: registryCpu() - r0 };
      };

      const samples: Record<string, Sample[]> = {};
      const add = (k: string, s: Sample) => (samples[k] ??= []).push(s);
      // Warm targets, filled once by each tool.
      await copier.copy({ source, target: `${warm}/warm-ours/big` });
      await skopeoCopy(source, `${warm}/warm-skopeo/big:v1`);
      const loadBefore = load();
      for (let i = 0; i < runs; i++) {
        const order: [string, () => Promise<void>][] = [
          [
            'ours',
            async () => {
              add('cold ours', await ours(`${target}/cold-ours-${i}/big`));
              await unlink(
                target,
                `cold-ours-${i}/big`,
                blobs.map((b) => b.digest),
                img!.digest,
              );
              add('warm ours', await ours(`${warm}/warm-ours/big`));
              add('mount ours', await ours(`${central}/mount-ours-${i}/big`));
              await unlink(
                central,
                `mount-ours-${i}/big`,
                blobs.map((b) => b.digest),
                img!.digest,
              );
            },
          ],
          [
            'skopeo',
            async () => {
              add('cold skopeo', await theirs(`${target}/cold-skopeo-${i}/big`));
              await unlink(
                target,
                `cold-skopeo-${i}/big`,
                blobs.map((b) => b.digest),
                img!.digest,
              );
              add('warm skopeo', await theirs(`${warm}/warm-skopeo/big`));
              add('mount skopeo', await theirs(`${central}/mount-skopeo-${i}/big`));
              await unlink(
                central,
                `mount-skopeo-${i}/big`,
                blobs.map((b) => b.digest),
                img!.digest,
              );
            },
          ],
        ];
        if (i % 2) order.reverse();
        for (const [, f] of order) await f();
        process.stderr.write(
          `[bench] round ${i + 1}/${runs}: cold ours ${samples['cold ours']!.at(-1)!.ms.toFixed(0)} ms, cold skopeo ${samples['cold skopeo']!.at(-1)!.ms.toFixed(0)} ms\n`,
        );
      }
      const loadAfter = load();
      await pool.close();

      const med = (k: string, f: keyof Sample = 'ms') => median(samples[k]!.map((s) => s[f]));
      const mbps = (k: string) => bytes / 1e6 / (med(k) / 1000);
      const rows: (string | number)[][] = [
        ['case', 'median ms', 'MB/s', 'min..max ms', 'client CPU ms', 'registries CPU ms'],
      ];
      for (const k of Object.keys(samples)) {
        const ms = samples[k]!.map((s) => s.ms);
        rows.push([
          k,
          Math.round(med(k)),
          Math.round(mbps(k)),
          `${Math.round(Math.min(...ms))}..${Math.round(Math.max(...ms))}`,
          Math.round(med(k, 'selfCpuMs')),
          Math.round(med(k, 'registryCpuMs')),
        ]);
      }
      const ratios = {
        coldThroughputVsSkopeo: mbps('cold ours') / mbps('cold skopeo'),
        warmOverCold: med('warm ours') / med('cold ours'),
        warmVsSkopeo: med('warm skopeo') / med('warm ours'),
        mountVsSkopeo: med('mount skopeo') / med('mount ours'),
      };
      console.log(
        `\ncopier vs skopeo ${process.env.npm_package_version ?? ''}: ${blobs.length} blobs, ${(bytes / 1e6).toFixed(0)} MB, ${runs} runs each (medians); load average ${loadBefore} -> ${loadAfter}`,
      );
      console.log(table(rows));
      console.log(
        `\ncold throughput, ours / skopeo: ${ratios.coldThroughputVsSkopeo.toFixed(2)}x  (goal >= 1.2x)` +
          `\nwarm / cold, ours:               ${ratios.warmOverCold.toFixed(3)}   (goal < 0.1)` +
          `\nwarm, skopeo time / ours:        ${ratios.warmVsSkopeo.toFixed(1)}x` +
          `\nmount, skopeo time / ours:       ${ratios.mountVsSkopeo.toFixed(1)}x`,
      );
      mkdirSync(path.join(benchRoot, 'reports'), { recursive: true });
      const file = path.join(benchRoot, 'reports', 'bench-copier.json');
      writeFileSync(
        file,
        JSON.stringify(
          {
            bytes,
            blobs: blobs.length,
            runs,
            load: { before: loadBefore, after: loadAfter },
            settings: defaultCopierSettings,
            samples,
            ratios,
          },
          null,
          2,
        ) + '\n',
      );
      console.log(`\nwrote ${path.relative(benchRoot, file)}`);
    },
    { parts: 'registries' },
  );
}
