// Opens N concurrent CloudEvent requests (in waves, to stay under the listen backlog), prints
// "opened" once all are sent, then waits for every reply and prints {ok, errors}.
// argv: url count
import { Agent, request } from 'node:http';

const [url, countArg] = process.argv.slice(2);
const target = new URL(url);
const count = Number(countArg);
const agent = new Agent({ keepAlive: false, maxSockets: Number.POSITIVE_INFINITY });
let ok = 0;
let errors = 0;
const replies = [];

function send(i) {
  return new Promise((resolveSent) => {
    replies.push(
      new Promise((resolve) => {
        const req = request(
          {
            host: target.hostname,
            port: target.port,
            path: target.pathname,
            method: 'POST',
            agent,
            headers: {
              'ce-id': `held-${i}`,
              'ce-source': '/bench',
              'ce-type': 'dev.afterlife.bench',
              'ce-specversion': '1.0',
              'content-type': 'application/json',
            },
          },
          (res) => {
            res.resume();
            res.on('end', () => {
              if (res.statusCode === 200) ok += 1;
              else errors += 1;
              resolve();
            });
          },
        );
        req.on('error', () => {
          errors += 1;
          resolve();
        });
        req.end('{"held":true}', resolveSent);
      }),
    );
  });
}

for (let i = 0; i < count; i += 500) {
  await Promise.all(Array.from({ length: Math.min(500, count - i) }, (_, j) => send(i + j)));
}
process.stdout.write('opened\n');
await Promise.all(replies);
process.stdout.write(`${JSON.stringify({ ok, errors })}\n`);
