// HdrHistogram V2 (+ deflate) histograms as the report embeds them, read
// in the browser, and the figures Stampede's Rust side computes from them
// (the `hdrhistogram` crate's rules, reproduced exactly), so that a window
// the user selects gets the same percentiles `stampede report --window`
// prints. Decoded histograms are sparse: the indexes with a count.
'use strict';

const Hdr = (() => {
  const V2 = 0x1c849313;
  const V2_DEFLATE = 0x1c849314;

  function base64Bytes(text) {
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  }

  async function inflate(bytes) {
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('deflate'));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  // The bucket layout of a histogram of `lowest` and `digits`.
  function layout(lowest, digits) {
    const largest = 2 * Math.pow(10, digits);
    const subBucketCountMagnitude = Math.ceil(Math.log2(largest));
    const halfMagnitude = subBucketCountMagnitude - 1;
    return { unit: Math.floor(Math.log2(lowest)), halfMagnitude, half: Math.pow(2, halfMagnitude) };
  }

  function empty() {
    return { layout: layout(1, 3), index: new Int32Array(0), count: new Float64Array(0), total: 0 };
  }

  // Reads one base64 histogram; rejects what is not V2.
  async function decode(text) {
    if (!text) return empty();
    const raw = base64Bytes(text);
    const outer = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    let bytes = raw;
    if (outer.getUint32(0) === V2_DEFLATE) {
      bytes = await inflate(raw.subarray(8, 8 + outer.getUint32(4)));
    }
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (view.getUint32(0) !== V2) throw new Error('not an HdrHistogram V2 histogram');
    const payloadLength = view.getUint32(4);
    const digits = view.getUint32(12);
    const lowest = Number(view.getBigUint64(16));
    const index = [];
    const count = [];
    let total = 0;
    let at = 0;
    let pos = 40;
    const end = 40 + payloadLength;
    while (pos < end) {
      // LEB128, at most 9 bytes, the ninth with all 8 bits.
      let value = 0;
      let scale = 1;
      for (let n = 0; n < 9; n++) {
        const b = bytes[pos++];
        if (n === 8) {
          value += b * scale;
          break;
        }
        value += (b & 0x7f) * scale;
        scale *= 128;
        if ((b & 0x80) === 0) break;
      }
      // ZigZag: negative numbers are runs of empty buckets.
      const signed = value % 2 === 1 ? -(value + 1) / 2 : value / 2;
      if (signed < 0) {
        at += -signed;
      } else {
        if (signed > 0) {
          index.push(at);
          count.push(signed);
          total += signed;
        }
        at += 1;
      }
    }
    return { layout: layout(lowest, digits), index: Int32Array.from(index), count: Float64Array.from(count), total };
  }

  // Bucket of a counts index, and the lowest value it holds.
  function locate(l, i) {
    let bucket = Math.floor(i / l.half) - 1;
    let sub = (i % l.half) + l.half;
    if (bucket < 0) {
      sub -= l.half;
      bucket = 0;
    }
    const range = Math.pow(2, bucket + l.unit);
    return { lowest: sub * range, range };
  }
  const lowestValue = (l, i) => locate(l, i).lowest;
  function highestValue(l, i) {
    const at = locate(l, i);
    return at.lowest + at.range - 1;
  }
  function medianValue(l, i) {
    const at = locate(l, i);
    return at.lowest + Math.floor(at.range / 2);
  }

  // The sum of several histograms of the same layout.
  function merge(histograms) {
    const present = histograms.filter((h) => h.total > 0);
    if (present.length === 0) return empty();
    if (present.length === 1) return present[0];
    let size = 0;
    for (const h of present) size = Math.max(size, h.index[h.index.length - 1] + 1);
    const dense = new Float64Array(size);
    for (const h of present) {
      for (let k = 0; k < h.index.length; k++) dense[h.index[k]] += h.count[k];
    }
    const index = [];
    const count = [];
    let total = 0;
    for (let i = 0; i < size; i++) {
      if (dense[i] > 0) {
        index.push(i);
        count.push(dense[i]);
        total += dense[i];
      }
    }
    return { layout: present[0].layout, index: Int32Array.from(index), count: Float64Array.from(count), total };
  }

  // `value_at_quantile`: the highest value equivalent to the bucket where
  // the count reaches ceil(q * total) (at least 1).
  function quantile(h, q) {
    if (h.total === 0) return 0;
    const capped = Math.min(q, 1);
    const target = Math.max(1, Math.ceil(capped * h.total));
    let seen = 0;
    for (let k = 0; k < h.index.length; k++) {
      seen += h.count[k];
      if (seen >= target) {
        return capped === 0 ? lowestValue(h.layout, h.index[k]) : highestValue(h.layout, h.index[k]);
      }
    }
    return highestValue(h.layout, h.index[h.index.length - 1]);
  }

  function mean(h) {
    if (h.total === 0) return 0;
    let sum = 0;
    for (let k = 0; k < h.index.length; k++) sum += (medianValue(h.layout, h.index[k]) * h.count[k]) / h.total;
    return sum;
  }

  // The figures of the report's LatencySummary.
  function summary(h) {
    if (h.total === 0) return { count: 0, min: 0, mean: 0, p50: 0, p90: 0, p95: 0, p99: 0, p999: 0, p9999: 0, max: 0 };
    return {
      count: h.total,
      min: lowestValue(h.layout, h.index[0]),
      mean: Math.round(mean(h) * 10) / 10,
      p50: quantile(h, 0.5),
      p90: quantile(h, 0.9),
      p95: quantile(h, 0.95),
      p99: quantile(h, 0.99),
      p999: quantile(h, 0.999),
      p9999: quantile(h, 0.9999),
      max: highestValue(h.layout, h.index[h.index.length - 1]),
    };
  }

  // Points of the percentile spectrum: for 1/(1-p) = 1, 10^0.1, ... up to
  // the total count, the latency at p, as HdrHistogram plots it.
  function spectrum(h) {
    const xs = [];
    const ys = [];
    if (h.total === 0) return [xs, ys];
    for (let k = 0; ; k++) {
      const x = Math.pow(10, k / 20);
      const p = 1 - 1 / x;
      xs.push(x);
      ys.push(quantile(h, p));
      if (x >= h.total) break;
    }
    xs.push(Math.max(h.total, 1) * 1.0001);
    ys.push(quantile(h, 1));
    return [xs, ys];
  }

  return { decode, merge, quantile, summary, spectrum };
})();
