// Starts The Lounge on a Byzantium node, in the foreground, in place of its
// own bin (index.js), for three reasons:
//
// - The Lounge finds config.js in its home folder ($THELOUNGE_HOME), and
//   writes there too (users/, logs/, storage/, packages/, certificates/,
//   vapid.json, sts-policies.json). byzd renders config files outside the
//   service's data folder, so the home is the data folder and config.js is
//   read from /etc/thelounge/config.js instead.
// - Its bin refuses Node.js older than 22, and its client loads node:sqlite
//   (Node.js 22.5) at start. Debian 12 ships Node.js 18. Only sqlite message
//   storage needs that module, and the node's config keeps no messages, so
//   node:sqlite is a stand-in that fails only if it is used.
// - It asks GitHub for its changelog at start and once a day, and when the
//   Help page opens it. A node makes no request it was not asked to make,
//   and may have no Internet: the changelog is the installed version alone.
// - A unix socket left by a process that was killed makes listen fail
//   (EADDRINUSE), and The Lounge only logs that: it is removed first.
"use strict";

const fs = require("fs");
const path = require("path");
const Module = require("module");

const app = path.join(__dirname, "node_modules", "thelounge");
const configFile = process.env.THELOUNGE_CONFIG || "/etc/thelounge/config.js";

const load = Module._load;
Module._load = function (request, ...rest) {
	if (request !== "node:sqlite") {
		return load.call(this, request, ...rest);
	}
	try {
		return load.call(this, request, ...rest);
	} catch (err) {
		if (err.code !== "ERR_UNKNOWN_BUILTIN_MODULE") {
			throw err;
		}
		return {
			DatabaseSync: class {
				constructor() {
					throw new Error(`sqlite message storage needs Node.js 22.5 (this is ${process.version})`);
				}
			},
		};
	}
};

// The Config instance every part of The Lounge shares: its config file is
// configFile, whatever the home.
const config = require(path.join(app, "dist", "server", "config.js")).default;
config.getConfigPath = () => configFile;

const changelog = require(path.join(app, "dist", "server", "plugins", "changelog.js")).default;
const version = require(path.join(app, "package.json")).version;
changelog.checkForUpdates = () => {};
changelog.fetch = async () => ({
	current: {prerelease: false, version: `v${version}`, changelog: undefined, url: ""},
	expiresAt: -1,
	latest: undefined,
	packages: undefined,
});

const host = require(configFile).host;
if (typeof host === "string" && host.startsWith("unix:")) {
	const sock = host.slice("unix:".length);
	try {
		if (fs.lstatSync(sock).isSocket()) {
			fs.unlinkSync(sock);
		}
	} catch (err) {
		if (err.code !== "ENOENT") {
			throw err;
		}
	}
}

// As The Lounge's bin does: its paths to the client's files are relative.
process.chdir(app);
require(path.join(app, "dist", "server", "index.js"));
