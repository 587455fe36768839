'use strict';
// Starts Etherpad 1.8 (the ep_etherpad-lite package) from a read-only
// install, for byzd. Etherpad expects a git checkout it can write into;
// this module has none, so three things are settled here, before the
// server's own start:
//
//  - Commands: Etherpad runs npm to log its version and to list its
//    plugins, and fails at start when npm is not on its PATH (the spawn
//    error is not handled). It runs no command here: the plugins are
//    given below (Etherpad's own core plugin, ep_etherpad-lite, alone) and
//    the version check logs that it was not run.
//  - Update check: Etherpad asks its project's web site for the latest
//    version at every start and offers no setting to stop it. A node on
//    a mesh must not call out, so the check does nothing.
//  - Unix socket: Etherpad listens on the path in "port" when "ip" is
//    empty, but a socket file left by a process that was killed makes
//    listen fail; a stale one is removed first (only a socket).
//
// The arguments are Etherpad's own: --settings FILE, --sessionkey FILE,
// --apikey FILE (the last two in the data folder: Etherpad writes them).
// The layout that Etherpad's base-path search needs (its package in a
// folder named src, with node_modules/ep_etherpad-lite a link to it) is
// the module's: see examples/apps/etherpad.

const fs = require('fs');
const Module = require('module');
const path = require('path');

const core = path.join(__dirname, 'node_modules', 'ep_etherpad-lite');

// Etherpad's helper that runs a command, replaced before any part of
// Etherpad loads it.
const runCmdFile = require.resolve('ep_etherpad-lite/node/utils/run_cmd');
const runCmd = new Module(runCmdFile, module);
runCmd.filename = runCmdFile;
runCmd.loaded = true;
runCmd.exports = async (args) => {
  throw new Error(`${args.join(' ')}: not run (Etherpad runs no commands on this node)`);
};
require.cache[runCmdFile] = runCmd;

const settings = require('ep_etherpad-lite/node/utils/Settings');
if (settings.ip === '' && typeof settings.port === 'string') {
  try {
    // bigint: Node's realpath reads the last (number) stat's type, and
    // after a socket's it stops resolving links: Etherpad's modules would
    // then load twice, under node_modules/ep_etherpad-lite and src.
    if (fs.lstatSync(settings.port, {bigint: true}).isSocket()) fs.unlinkSync(settings.port);
  } catch (err) {
    if (err.code !== 'ENOENT') throw err;
  }
}

const plugins = require('ep_etherpad-lite/static/js/pluginfw/plugins');
plugins.getPackages = async () => {
  const pj = JSON.parse(fs.readFileSync(path.join(core, 'package.json'), 'utf8'));
  return {
    'ep_etherpad-lite': {
      name: pj.name,
      version: pj.version,
      path: core,
      realPath: fs.realpathSync(core),
    },
  };
};

require('ep_etherpad-lite/node/utils/UpdateCheck').check = () => {};

require('ep_etherpad-lite/node/server').start();
