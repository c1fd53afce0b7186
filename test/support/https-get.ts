// One HTTPS GET with a chosen SNI and Host, certificate not verified (the
// demo certificates are self-signed): returns the body text.
import { request } from 'node:https';

export function httpsGetText(port: number, path: string, servername: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, servername, headers: { host: servername }, rejectUnauthorized: false }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve(text));
    });
    req.on('error', reject);
    req.end();
  });
}
