/** Little-endian reads that move along a buffer: the tests' own GGUF walkers read headers with it. */
export class ByteCursor {
  constructor(
    readonly b: Buffer,
    public p = 0,
  ) {}

  private take(n: number): number {
    const at = this.p;
    this.p += n;
    return at;
  }

  u8 = (): number => this.b[this.take(1)];
  u32 = (): number => this.b.readUInt32LE(this.take(4));
  i32 = (): number => this.b.readInt32LE(this.take(4));
  f32 = (): number => this.b.readFloatLE(this.take(4));
  u64 = (): number => Number(this.b.readBigUInt64LE(this.take(8)));
  /** a GGUF string: u64 length, then UTF-8 bytes */
  str = (): string => {
    const len = this.u64();
    return this.b.toString('utf8', this.take(len), this.p);
  };
}
