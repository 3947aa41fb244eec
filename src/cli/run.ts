/**
 * `gatehouse run --config FILE`: run until SIGTERM/SIGINT; reload on SIGHUP and on file change.
 *
 * Start-up order when started as root (docs/deploy.md#privileges): validate the config
 * (secret files checked for process.user) → bind every listener → drop to process.user
 * (groups cleared, gid, uid) → validate the config again as that user → build the gateway
 * (read secrets, open stores and state files, TLS) on the bound sockets → serve.
 */
import { chownSync, existsSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError, formatProblems, loadConfig, type LoadedConfig } from '../config/load.js';
import { BoundListeners } from '../server/bind.js';
import { Gateway } from '../server/gateway.js';
import { dropPrivileges, planPrivileges, PrivilegeError, type PrivilegePlan, type RunAs } from '../server/privileges.js';
import { CONFIG_REQUIRED, parseCommand, type CommandSpec } from './args.js';

export const SPEC: CommandSpec = {
  name: 'run',
  summary: 'Run the gateway until SIGTERM/SIGINT; reload on SIGHUP and when the config file changes.',
  usage: 'gatehouse run --config FILE',
  options: { config: CONFIG_REQUIRED },
};

export async function run(args: string[]): Promise<number> {
  const p = parseCommand(SPEC, args);
  if (typeof p === 'number') return p;
  const file = p.values.config as string;
  // Files gatehouse creates (state, spools) are for its own user only.
  process.umask(0o077);
  let gw: Gateway;
  let bound: BoundListeners | undefined;
  let plan: PrivilegePlan | undefined;
  try {
    let loaded = loadConfig(file);
    plan = planPrivileges(loaded.config.process);
    if (plan.action === 'drop') {
      bound = await BoundListeners.bind(loaded.config);
      prepareStateDir(loaded, plan.to);
      dropPrivileges(plan.to);
      // Everything again as the user that will serve (and reload): what it cannot read fails here.
      loaded = loadConfig(file);
    }
    gw = await Gateway.start({ loaded, watch: true, bound });
  } catch (err) {
    bound?.close();
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.file}: invalid, not starting${plan?.action === 'drop' ? ` (checked as ${plan.to.user})` : ''}\n${formatProblems(err.problems)}\n`);
      return 1;
    }
    if (err instanceof PrivilegeError) {
      process.stderr.write(`gatehouse run: ${err.message}\n`);
      return 1;
    }
    const hint = (err as NodeJS.ErrnoException).code === 'EACCES' && (err as NodeJS.ErrnoException).syscall === 'listen' ? ' (a port below 1024 needs root or CAP_NET_BIND_SERVICE)' : '';
    process.stderr.write(`gatehouse run: cannot start: ${(err as Error).message}${hint}\n`);
    return 1;
  }
  if (plan.action === 'drop') gw.log.info({ event: 'privileges_dropped', user: plan.to.user, uid: plan.to.uid, gid: plan.to.gid }, 'listeners bound; running unprivileged');
  else if (plan.action === 'root') gw.log.warn({ event: 'running_as_root' }, plan.warning);
  return serveUntilSignal(gw);
}

/** state.dir, when missing, is created for the user gatehouse drops to (0700), so its state files are that user's. */
function prepareStateDir(loaded: LoadedConfig, to: RunAs): void {
  const dir = resolve(loaded.dir, loaded.config.state.dir);
  if (existsSync(dir)) return;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chownSync(dir, to.uid, to.gid);
}

export function serveUntilSignal(gw: Gateway, onStop?: () => Promise<void>): Promise<number> {
  return new Promise((resolveExit) => {
    const onHup = () => void gw.reload('sighup');
    process.on('SIGHUP', onHup);
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        // A second signal: stop now.
        process.exit(1);
      }
      stopping = true;
      gw.log.info({ event: 'shutdown', signal }, 'draining');
      gw.close()
        .then(() => onStop?.())
        .then(
          () => resolveExit(0),
          () => resolveExit(1),
        )
        .finally(() => process.off('SIGHUP', onHup));
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}
