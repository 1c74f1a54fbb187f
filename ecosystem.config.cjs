// pm2 process file: `pm2 start ecosystem.config.cjs` runs `cairn start` from this directory with the example
// stages (examples/cairn.config.json, data in ./state). For your own project, point --config at your config.
// pm2 stops with SIGINT, then SIGKILL after kill_timeout: give the daemon its shutdownGraceMs (10 s
// by default) plus the 2 s a stage gets between SIGTERM and SIGKILL, so a stop is always graceful.
module.exports = {
  apps: [
    {
      name: 'cairn',
      cwd: __dirname,
      script: 'dist/src/cairn.cjs',
      args: 'start --config examples/cairn.config.json',
      interpreter: 'node',
      kill_timeout: 15000,
      // Stages run in their own process groups and the daemon stops them itself; pm2 must signal
      // only the daemon, not the whole tree, or stages die before their grace period.
      treekill: false,
      autorestart: true,
      // Exit 2 is a config or usage error: restarting cannot fix it, so pm2 does not restart it (pm2 7
      // lists it `waiting restart` with no pid: with a restart delay set it shows that status even so).
      stop_exit_codes: [2],
      min_uptime: '10s',
      max_restarts: 50,
      exp_backoff_restart_delay: 1000,
      // pm2 creates these 0644 with its own umask; `cairn start` makes them 0600 (and state/logs 0700).
      out_file: 'state/logs/daemon.out.log',
      error_file: 'state/logs/daemon.err.log',
      merge_logs: true,
      env: { NODE_ENV: 'production', CAIRN_LOG_FORMAT: 'json' },
    },
  ],
};
