// The same app as a raw (req, res) listener: the baseline.
export default function hello(_req, res) {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '11' });
  res.end('Hello World');
}
