// Entry point of every node action process: `node node_wrapper.js <result_fd> <action.js>`.
// The action exports `run(params)` (or is itself that function), sync or async; the JSON
// object on stdin is its argument and its return value is written as {"result": ...} on the
// result channel, a pipe the runner passed as an extra descriptor, so the action's own
// console output never mixes with it. A throw prints its stack to stderr, writes
// {"error": "..."} on the channel and exits 1.
'use strict';
const fs = require('fs');

const fd = Number(process.argv[2]);
const file = process.argv[3];

function send(doc) {
  try {
    fs.writeSync(fd, JSON.stringify(doc));
  } catch (err) {
    console.error(`could not report the result: ${err}`);
  }
}

function oneLine(err) {
  const text = err && err.message !== undefined ? `${err.name || 'Error'}: ${err.message}` : String(err);
  return text.split('\n')[0].slice(0, 1000);
}

(async () => {
  let params = {};
  try {
    const input = fs.readFileSync(0, 'utf8');
    params = input.trim() ? JSON.parse(input) : {};
  } catch (err) {
    send({ error: `parameters are not JSON: ${oneLine(err)}` });
    process.exit(1);
  }
  let run;
  try {
    const mod = require(file);
    run = typeof mod === 'function' ? mod : mod && mod.run;
  } catch (err) {
    console.error(err && err.stack ? err.stack : String(err));
    send({ error: oneLine(err) });
    process.exit(1);
  }
  if (typeof run !== 'function') {
    send({ error: 'the action exports no run(params): write module.exports = { run }' });
    process.exit(1);
  }
  try {
    const result = await run(params);
    send({ result: result === undefined ? null : result });
    process.exitCode = 0;
  } catch (err) {
    console.error(err && err.stack ? err.stack : String(err));
    send({ error: oneLine(err) });
    process.exit(1);
  }
})();
