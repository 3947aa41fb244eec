/** `gatehouse run --config FILE`: run until SIGTERM/SIGINT; reload on SIGHUP and on file change. */
import { ConfigError, formatProblems, loadConfig } from '../config/load.js';
import { Gateway } from '../server/gateway.js';
import { configArg, UsageError } from './args.js';

export async function run(args: string[]): Promise<number> {
  let file: string;
  try {
    file = configArg(args).config;
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`gatehouse run: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  let gw: Gateway;
  try {
    gw = await Gateway.start({ loaded: loadConfig(file), watch: true });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.file}: invalid, not starting\n${formatProblems(err.problems)}\n`);
      return 1;
    }
    process.stderr.write(`gatehouse run: cannot start: ${(err as Error).message}\n`);
    return 1;
  }
  return serveUntilSignal(gw);
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
