// Baseline: the same echo contract as examples/echo, as a plain Node HTTP server — what a
// container entrypoint `node server.js` would run. Used only by the cold-start bench.
import { createServer } from 'node:http';

const port = Number(process.env.PORT ?? 8080);
createServer((req, res) => {
  if (req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end('ok');
    return;
  }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const id = req.headers['ce-id'];
    if (!id || !req.headers['ce-source'] || !req.headers['ce-type'] || req.headers['ce-specversion'] !== '1.0') {
      res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"not a CloudEvent"}');
      return;
    }
    const body = Buffer.concat(chunks).toString();
    let data = null;
    try {
      data = body ? JSON.parse(body) : null;
    } catch {
      data = body;
    }
    res
      .writeHead(200, {
        'ce-specversion': '1.0',
        'ce-id': `${id}-reply`,
        'ce-source': '/afterlife/echo',
        'ce-type': 'dev.afterlife.echo.reply',
        'ce-echoid': id,
        'content-type': 'application/json',
      })
      .end(JSON.stringify({ id, source: req.headers['ce-source'], type: req.headers['ce-type'], data, workMs: 0 }));
  });
}).listen(port, process.env.HOST ?? '0.0.0.0');
