/**
 * A minimal Redis client (RESP2 over TCP): the commands the shared context store needs (PING, GET, SET with
 * an expiry, DEL), binary-safe, one connection, commands answered in order. A connection error fails every
 * pending command; the next command reconnects.
 */
import { Socket, connect } from 'node:net';
import { KvevictError } from '../errors.js';

type Reply = Buffer | string | number | null | Reply[];

interface Pending {
  resolve: (r: Reply) => void;
  reject: (e: Error) => void;
}

/** redis://HOST:PORT[/DB] -> host, port, db; anything else is refused naming the option. */
export function parseRedisUrl(url: string, where = '--store'): { host: string; port: number; db: number } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new KvevictError(`${where}: "${url}" is not a URL (expected redis://HOST:PORT)`);
  }
  if (u.protocol !== 'redis:') throw new KvevictError(`${where}: "${url}" is not a redis:// URL`);
  const port = u.port ? Number(u.port) : 6379;
  const db = u.pathname && u.pathname !== '/' ? Number(u.pathname.slice(1)) : 0;
  if (!u.hostname || !Number.isInteger(port) || !Number.isInteger(db) || db < 0)
    throw new KvevictError(`${where}: "${url}" needs a host, a port and an optional database number`);
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port, db };
}

function encodeCommand(args: (string | Buffer)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = typeof a === 'string' ? Buffer.from(a, 'utf8') : a;
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/** Parse one reply starting at `at`; null when the buffer does not hold all of it yet. */
function parseReply(buf: Buffer, at: number): { reply: Reply | Error; next: number } | null {
  const eol = buf.indexOf('\r\n', at);
  if (eol < 0) return null;
  const type = String.fromCharCode(buf[at]);
  const line = buf.toString('utf8', at + 1, eol);
  switch (type) {
    case '+':
      return { reply: line, next: eol + 2 };
    case '-':
      return { reply: new Error(line), next: eol + 2 };
    case ':':
      return { reply: Number(line), next: eol + 2 };
    case '$': {
      const n = Number(line);
      if (n < 0) return { reply: null, next: eol + 2 };
      if (buf.length < eol + 2 + n + 2) return null;
      return { reply: buf.subarray(eol + 2, eol + 2 + n), next: eol + 2 + n + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { reply: null, next: eol + 2 };
      const items: Reply[] = [];
      let next = eol + 2;
      for (let i = 0; i < n; i++) {
        const r = parseReply(buf, next);
        if (!r) return null;
        if (r.reply instanceof Error) return r;
        items.push(r.reply);
        next = r.next;
      }
      return { reply: items, next };
    }
    default:
      throw new Error(`redis: unexpected reply byte ${JSON.stringify(type)}`);
  }
}

export class RedisClient {
  private socket: Socket | null = null;
  private ready: Promise<void> | null = null;
  private pending: Pending[] = [];
  private buffer: Buffer = Buffer.alloc(0);

  constructor(
    readonly host: string,
    readonly port: number,
    readonly db = 0,
  ) {}

  static fromUrl(url: string, where = '--store'): RedisClient {
    const { host, port, db } = parseRedisUrl(url, where);
    return new RedisClient(host, port, db);
  }

  private connect(): Promise<void> {
    if (this.ready) return this.ready;
    this.ready = new Promise<void>((resolve, reject) => {
      const s = connect({ host: this.host, port: this.port });
      s.setNoDelay(true);
      s.once('connect', () => resolve());
      s.on('data', (d: Buffer) => this.onData(d));
      const fail = (e: Error) => {
        const err = new KvevictError(`redis ${this.host}:${this.port}: ${e.message}`);
        reject(err);
        this.drop(err);
      };
      s.once('error', fail);
      s.once('close', () => this.drop(new KvevictError(`redis ${this.host}:${this.port}: connection closed`)));
      this.socket = s;
    });
    const first = this.ready;
    return this.db ? first.then(() => this.command(['SELECT', String(this.db)]).then(() => undefined)) : first;
  }

  private drop(err: Error): void {
    this.socket?.destroy();
    this.socket = null;
    this.ready = null;
    this.buffer = Buffer.alloc(0);
    for (const p of this.pending.splice(0)) p.reject(err);
  }

  private onData(d: Buffer): void {
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, d]) : d;
    let at = 0;
    for (;;) {
      let r: ReturnType<typeof parseReply>;
      try {
        r = parseReply(this.buffer, at);
      } catch (e) {
        this.drop(e as Error);
        return;
      }
      if (!r) break;
      at = r.next;
      const p = this.pending.shift();
      if (p) {
        if (r.reply instanceof Error) p.reject(new KvevictError(`redis: ${r.reply.message}`));
        else p.resolve(r.reply);
      }
      if (at >= this.buffer.length) break;
    }
    this.buffer = at >= this.buffer.length ? Buffer.alloc(0) : Buffer.from(this.buffer.subarray(at));
  }

  async command(args: (string | Buffer)[]): Promise<Reply> {
    await this.connect();
    return new Promise<Reply>((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.socket!.write(encodeCommand(args));
    });
  }

  async ping(): Promise<boolean> {
    return (await this.command(['PING'])) === 'PONG';
  }

  async get(key: string): Promise<Buffer | null> {
    const r = await this.command(['GET', key]);
    return r === null ? null : (r as Buffer);
  }

  /** SET key value, expiring after `ttlSeconds` when given. */
  async set(key: string, value: Buffer, ttlSeconds?: number): Promise<void> {
    await this.command(ttlSeconds ? ['SET', key, value, 'EX', String(ttlSeconds)] : ['SET', key, value]);
  }

  async del(key: string): Promise<void> {
    await this.command(['DEL', key]);
  }

  close(): void {
    this.socket?.end();
    this.socket = null;
    this.ready = null;
  }
}
