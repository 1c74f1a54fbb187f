/**
 * The systemd unit `cairn service systemd` prints: this install's node and cairn, restarts that stop on
 * a config error, a graceful stop, and the sandboxing that still lets cairn and its stages work.
 * `systemd-analyze security` rates it at most 5.0 (test/initService.test.ts checks it).
 *
 * Left out on purpose: MemoryDenyWriteExecute (V8's JIT needs writable, executable memory), ProcSubset=pid
 * (node reads /proc/cpuinfo and /proc/meminfo), PrivateUsers and SystemCallFilter (stage programs are
 * arbitrary: a compiler, a test runner or an agent CLI must run as it does in a shell). ProtectHome is
 * read-only rather than yes, so node and tools installed under a home (nvm, npm's prefix) still run.
 */
import { UsageError } from '../errors.js';
import { configFlags, shellQuote, type ServiceSetup } from './serviceSetup.js';

/**
 * One systemd word: `%` doubled (specifiers), `$` doubled in a command line (variables), quoted when
 * it holds a space, a quote or a backslash. Throws on a newline, which a unit line cannot hold. Pure.
 */
export function systemdWord(value: string, isCommandLine = false): string {
  if (/[\n\r]/.test(value)) throw new UsageError(`${JSON.stringify(value)} holds a line break, which a systemd unit cannot carry; rename the path`);
  let word = value.replace(/%/g, '%%');
  if (isCommandLine) word = word.replace(/\$/g, '$$$$');
  return /[\s"'\\;]/.test(word) ? `"${word.replace(/[\\"]/g, (c) => `\\${c}`)}"` : word;
}

const isUnderTmp = (p: string) => /^\/(var\/)?tmp(\/|$)/.test(p);

/** The whole unit file for `setup`. Pure. */
export function renderSystemdUnit(setup: ServiceSetup): string {
  const argv = [setup.nodePath, setup.cairnPath, 'start', ...configFlags(setup)];
  const flags = [...configFlags(setup), '--user', setup.user];
  const regenerate = `${setup.cairnCommand} ${['service', 'systemd', ...flags].map(shellQuote).join(' ')}`;
  // PrivateTmp gives the service an empty /tmp of its own, where a directory it must write would not be.
  const tmpPaths = setup.writePaths.filter(isUnderTmp);
  // The daemon gets shutdownGraceMs to drain, each stage 2 s between SIGTERM and SIGKILL; then a margin.
  const stopSec = Math.ceil(setup.shutdownGraceMs / 1000) + 10;
  const lines = [
    `# cairn as a systemd service, made by \`${regenerate}\``,
    `# for cairn ${setup.cairnVersion} at ${setup.cairnPath}, run by node ${setup.nodeVersion} at ${setup.nodePath}.`,
    `# Make it again after moving either, or after changing dataDir or a stage's cwd: the service may write`,
    `# only the ReadWritePaths below.`,
    '#',
    '# Install it, as root: save this output as cairn.service (`… > cairn.service`), then',
    `#   install -d -m 0700 -o ${shellQuote(setup.user)} ${shellQuote(setup.dataDir)} && chown -R ${shellQuote(setup.user)} ${shellQuote(setup.dataDir)}`,
    '#   install -m 0644 cairn.service /etc/systemd/system/cairn.service',
    '#   systemctl daemon-reload && systemctl enable --now cairn',
    `# ${setup.user} must be able to read ${setup.configFile} and the stage programs, and to write ${setup.writePaths.join(', ')}.`,
    '# Logs: journalctl -u cairn -f    Status: systemctl status cairn    Sandbox rating: systemd-analyze security cairn',
    '',
    '[Unit]',
    'Description=cairn orchestrator daemon',
    'After=network-online.target',
    'Wants=network-online.target',
    '',
    '[Service]',
    'Type=simple',
    `User=${setup.user}`,
    `WorkingDirectory=${systemdWord(setup.workingDir)}`,
    `ExecStart=${argv.map((a) => systemdWord(a, true)).join(' ')}`,
    '# node\'s directory first, so stage programs installed with npm or nvm beside it are found.',
    `Environment=${systemdWord(`PATH=${setup.pathEnv}`)}`,
    'Environment=CAIRN_LOG_FORMAT=json',
    'Environment=NODE_ENV=production',
    '# Files the daemon and its stages create are private to the service user.',
    'UMask=0077',
    `# SIGTERM reaches the daemon only; it stops its stages itself within shutdownGraceMs (${setup.shutdownGraceMs} ms) + 2 s.`,
    '# Whatever is left after TimeoutStopSec is killed, and those tasks resume on the next start.',
    'KillMode=mixed',
    'KillSignal=SIGTERM',
    `TimeoutStopSec=${stopSec}`,
    'Restart=on-failure',
    'RestartSec=2',
    '# Exit 2 is a config or usage error: a restart cannot fix it.',
    'RestartPreventExitStatus=2',
    '',
    '# Sandbox. The whole file system is read-only except these: the data directory and every stage\'s',
    '# working directory (ReadWritePaths also opens a path under ProtectHome=read-only).',
    'ProtectSystem=strict',
    ...setup.writePaths.map((p) => `ReadWritePaths=${systemdWord(p)}`),
    'ProtectHome=read-only',
    ...(tmpPaths.length > 0
      ? [`# PrivateTmp=yes would hide ${tmpPaths.join(', ')} (under /tmp); move them out of /tmp to turn it on.`, 'PrivateTmp=no']
      : ['PrivateTmp=yes']),
    '# Only /dev/null, zero, random and the like; delete this line for a stage that needs a device (a GPU).',
    'PrivateDevices=yes',
    'PrivateMounts=yes',
    'NoNewPrivileges=yes',
    'CapabilityBoundingSet=',
    'AmbientCapabilities=',
    'RestrictSUIDSGID=yes',
    'RestrictNamespaces=yes',
    'RestrictRealtime=yes',
    '# Local sockets, and TCP/IP for PostgreSQL, Redis and whatever the stages call.',
    'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6',
    'LockPersonality=yes',
    'ProtectKernelTunables=yes',
    'ProtectKernelModules=yes',
    'ProtectKernelLogs=yes',
    'ProtectControlGroups=yes',
    'ProtectClock=yes',
    'ProtectHostname=yes',
    'ProtectProc=invisible',
    'RemoveIPC=yes',
    'KeyringMode=private',
    'SystemCallArchitectures=native',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ];
  return lines.join('\n');
}
