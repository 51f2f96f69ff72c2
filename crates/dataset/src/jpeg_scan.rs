//! Walks a baseline JPEG's compressed data the way libjpeg does, to find the corruption
//! that zune-jpeg (even in strict mode) decodes into plausible pixels without a word:
//! scan data that ends before the last block (a cut file with its end marker put back),
//! blocks that run past 64 coefficients, restart markers out of order, and data left over
//! after the last block (a shifted or overwritten stretch makes the decoder lose its
//! place, so it finishes early or late). libjpeg warns "Corrupt JPEG data" for each of
//! these; here they are errors.
//!
//! Only the Huffman codes are read (no dequantisation, no IDCT), so the check costs a
//! fraction of a decode. Baseline and progressive Huffman files are checked; lossless and
//! arithmetic-coded ones are left to the decoder.

/// A few bytes after the last block are tolerated: some encoders pad the scan, and
/// libjpeg decodes such files correctly (with a warning). A decoder that lost its place
/// leaves far more.
const TOLERATED_LEFTOVER: usize = 16;

/// Checks the file's scans; `Ok` for a lossless or arithmetic-coded JPEG (not checked).
pub fn check(bytes: &[u8]) -> Result<(), String> {
    if bytes.get(..2) != Some(&[0xff, 0xd8]) {
        return Err("no start-of-image marker".into());
    }
    let mut tables: [Option<Huffman>; 8] = Default::default();
    let mut frame: Option<Frame> = None;
    let mut progressive = false;
    // Per component and block: the AC coefficients progressive scans have made nonzero.
    let mut nonzero: Vec<Vec<u64>> = Vec::new();
    let mut restart_interval = 0usize;
    let mut pos = 2;
    loop {
        let (marker, after) = next_marker(bytes, pos)?;
        pos = after;
        match marker {
            0xd9 => return Ok(()),
            0xd8 | 0x01 | 0xd0..=0xd7 => continue, // no length field
            _ => {}
        }
        let len = usize::from(u16::from_be_bytes([
            *bytes.get(pos).ok_or("cut inside a header")?,
            *bytes.get(pos + 1).ok_or("cut inside a header")?,
        ]));
        let segment = bytes
            .get(pos + 2..pos + len.max(2))
            .ok_or("a header segment runs past the end of the file")?;
        pos += len.max(2);
        match marker {
            0xc0..=0xc2 => {
                let parsed = Frame::parse(segment)?;
                progressive = marker == 0xc2;
                let blocks: Vec<usize> = parsed
                    .components
                    .iter()
                    .map(|c| {
                        let w = (parsed.width * c.h).div_ceil(parsed.h_max).div_ceil(8);
                        let h = (parsed.height * c.v).div_ceil(parsed.v_max).div_ceil(8);
                        w * h
                    })
                    .collect();
                // Every block takes at least one bit (its DC code): a file too short for
                // its blocks is refused before anything is allocated for them.
                if blocks.iter().sum::<usize>() > 8 * bytes.len() {
                    return Err(format!(
                        "{} bytes cannot hold the blocks of a {}x{} image",
                        bytes.len(),
                        parsed.width,
                        parsed.height
                    ));
                }
                if progressive {
                    nonzero = blocks.iter().map(|&n| vec![0u64; n]).collect();
                }
                frame = Some(parsed);
            }
            // Lossless, arithmetic-coded: the decoder's business.
            0xc3 | 0xc5..=0xc7 | 0xc9..=0xcb | 0xcd..=0xcf => return Ok(()),
            0xc4 => parse_tables(segment, &mut tables)?,
            0xdd => {
                let ri = segment.get(..2).ok_or("a short restart-interval header")?;
                restart_interval = usize::from(u16::from_be_bytes([ri[0], ri[1]]));
            }
            0xda => {
                let frame = frame.as_ref().ok_or("a scan before the frame header")?;
                if frame.height == 0 {
                    return Ok(()); // height given later by a DNL marker: not checked
                }
                let scan = Scan::parse(segment, frame, &tables, progressive)?;
                pos = scan.walk(bytes, pos, frame, restart_interval, &tables, &mut nonzero)?;
            }
            _ => {}
        }
    }
}

/// The next marker at or after `pos` in header space (fill bytes FF allowed); returns the
/// marker code and the position after it.
fn next_marker(bytes: &[u8], mut pos: usize) -> Result<(u8, usize), String> {
    let start = pos;
    loop {
        match bytes.get(pos..pos + 2) {
            None => return Err("ends without an end-of-image marker".into()),
            Some([0xff, 0xff]) => pos += 1,
            Some([0xff, m]) if *m != 0 => {
                // libjpeg's "extraneous bytes before marker", tolerated as after a scan.
                if pos - start > TOLERATED_LEFTOVER {
                    return Err(format!(
                        "{} stray bytes before marker FF{m:02X}",
                        pos - start
                    ));
                }
                return Ok((*m, pos + 2));
            }
            Some(_) => pos += 1,
        }
    }
}

struct Component {
    id: u8,
    h: usize,
    v: usize,
}

struct Frame {
    width: usize,
    height: usize,
    components: Vec<Component>,
    h_max: usize,
    v_max: usize,
}

impl Frame {
    fn parse(s: &[u8]) -> Result<Self, String> {
        let short = || "a short frame header".to_string();
        let height = usize::from(u16::from_be_bytes([
            *s.get(1).ok_or_else(short)?,
            *s.get(2).ok_or_else(short)?,
        ]));
        let width = usize::from(u16::from_be_bytes([
            *s.get(3).ok_or_else(short)?,
            *s.get(4).ok_or_else(short)?,
        ]));
        let n = usize::from(*s.get(5).ok_or_else(short)?);
        let mut components = Vec::with_capacity(n);
        for i in 0..n {
            let c = s.get(6 + 3 * i..9 + 3 * i).ok_or_else(short)?;
            let (h, v) = (usize::from(c[1] >> 4), usize::from(c[1] & 15));
            if !(1..=4).contains(&h) || !(1..=4).contains(&v) {
                return Err(format!("sampling factors {h}x{v} outside 1..4"));
            }
            components.push(Component { id: c[0], h, v });
        }
        if n == 0 || width == 0 {
            return Err("a frame with no components or no width".into());
        }
        let h_max = components.iter().map(|c| c.h).max().unwrap_or(1);
        let v_max = components.iter().map(|c| c.v).max().unwrap_or(1);
        Ok(Self {
            width,
            height,
            components,
            h_max,
            v_max,
        })
    }
}

/// An error found in the compressed data (kept static: the walk is a hot loop).
type Fault = &'static str;

const BAD_CODE: Fault = "a bad Huffman code";
const PREMATURE_END: Fault = "the compressed data ends before the last block";

/// One Huffman table: a 9-bit lookahead for the short codes (nearly all of them), and
/// libjpeg's max-code search for the long ones.
struct Huffman {
    /// Per 9-bit prefix: code length << 8 | symbol; 0 when the code is longer.
    fast: Vec<u16>,
    /// Per 9-bit prefix, read as an AC code: the bits a whole coefficient takes (its code
    /// and its value) << 8 | the positions it advances (run + 1); 0 when they do not fit
    /// in 9 bits or the symbol is not a coefficient (end of block, run of 16 zeros).
    fast_ac: Vec<u16>,
    /// Per code length: the largest code of that length (-1 for none), and the index into
    /// `symbols` of a code of that length minus the code.
    max_code: [i32; 17],
    offset: [i32; 17],
    symbols: Vec<u8>,
}

const FAST_BITS: u32 = 9;

impl Huffman {
    fn new(counts: &[u8; 16], symbols: Vec<u8>) -> Result<Self, String> {
        let mut fast = vec![0u16; 1 << FAST_BITS];
        let mut fast_ac = vec![0u16; 1 << FAST_BITS];
        let mut max_code = [-1i32; 17];
        let mut offset = [0i32; 17];
        let mut code = 0i32;
        let mut k = 0usize;
        for len in 1..=16usize {
            let n = usize::from(counts[len - 1]);
            offset[len] = k as i32 - code;
            for _ in 0..n {
                if code >= 1 << len {
                    return Err("a Huffman table with more codes than fit".into());
                }
                if len as u32 <= FAST_BITS {
                    let shift = FAST_BITS - len as u32;
                    let first = (code as usize) << shift;
                    let symbol = symbols[k];
                    let (run, size) = (u16::from(symbol >> 4), u16::from(symbol & 15));
                    let whole = len as u16 + size;
                    for entry in first..first + (1 << shift) {
                        fast[entry] = (len as u16) << 8 | u16::from(symbol);
                        if size > 0 && whole <= FAST_BITS as u16 {
                            fast_ac[entry] = whole << 8 | (run + 1);
                        }
                    }
                }
                code += 1;
                k += 1;
            }
            if n > 0 {
                max_code[len] = code - 1;
            }
            code <<= 1;
        }
        Ok(Self {
            fast,
            fast_ac,
            max_code,
            offset,
            symbols,
        })
    }

    /// The next symbol; the reader must hold at least 16 bits ([`BitReader::ensure`]).
    #[inline]
    fn decode(&self, bits: &mut BitReader) -> Result<u8, Fault> {
        let entry = self.fast[bits.peek(FAST_BITS) as usize];
        if entry != 0 {
            bits.consume(u32::from(entry >> 8));
            return Ok(entry as u8);
        }
        self.decode_long(bits)
    }

    /// A code longer than the lookahead: canonical codes of one length are consecutive,
    /// so the first length whose largest code is at least the bits read is the code's.
    #[cold]
    fn decode_long(&self, bits: &mut BitReader) -> Result<u8, Fault> {
        for len in FAST_BITS as usize + 1..=16 {
            let code = bits.peek(len as u32) as i32;
            if code <= self.max_code[len] {
                bits.consume(len as u32);
                let index = usize::try_from(code + self.offset[len]).map_err(|_| BAD_CODE)?;
                return self.symbols.get(index).copied().ok_or(BAD_CODE);
            }
        }
        Err(BAD_CODE)
    }
}

fn parse_tables(mut s: &[u8], tables: &mut [Option<Huffman>; 8]) -> Result<(), String> {
    while !s.is_empty() {
        let short = || "a short Huffman table".to_string();
        let class_id = s[0];
        let counts: [u8; 16] = s
            .get(1..17)
            .ok_or_else(short)?
            .try_into()
            .map_err(|_| short())?;
        let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
        let symbols = s.get(17..17 + total).ok_or_else(short)?.to_vec();
        let slot = usize::from(class_id >> 4 & 1) * 4 + usize::from(class_id & 3);
        tables[slot] = Some(Huffman::new(&counts, symbols)?);
        s = &s[17 + total..];
    }
    Ok(())
}

/// Reads the entropy-coded bytes: FF 00 is a data FF; any other FF xx is a marker, where
/// the data ends. Past it the reader supplies zero bits and counts them, so a decoder
/// that reads them ran past the data's end ([`BitReader::overran`]).
struct BitReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Left-aligned: the next bit is the top one.
    buffer: u64,
    /// Bits in `buffer`, data and padding.
    count: u32,
    /// Zero bits appended past the data's end; they sit after all the data bits.
    padding: u32,
    at_end: bool,
}

impl<'a> BitReader<'a> {
    fn new(bytes: &'a [u8], pos: usize) -> Self {
        Self {
            bytes,
            pos,
            buffer: 0,
            count: 0,
            padding: 0,
            at_end: false,
        }
    }

    fn fill(&mut self) {
        while self.count <= 56 {
            let byte = if self.at_end {
                0
            } else {
                match (self.bytes.get(self.pos), self.bytes.get(self.pos + 1)) {
                    (Some(0xff), Some(0)) => {
                        self.pos += 2;
                        0xff
                    }
                    (Some(0xff), _) | (None, _) => {
                        self.at_end = true;
                        0
                    }
                    (Some(&b), _) => {
                        self.pos += 1;
                        b
                    }
                }
            };
            if self.at_end {
                self.padding += 8;
            }
            self.buffer |= u64::from(byte) << (56 - self.count);
            self.count += 8;
        }
        // Padding only ever needs to cover one code past the end; keep the count bounded.
        self.padding = self.padding.min(self.count + 64);
    }

    /// At least 32 bits buffered: a code and its value, the most one step reads.
    #[inline]
    fn ensure(&mut self) {
        if self.count < 32 {
            self.fill();
        }
    }

    /// The next `n` bits (1..=32) as a number, without reading them.
    #[inline]
    fn peek(&self, n: u32) -> u32 {
        (self.buffer >> (64 - n)) as u32
    }

    #[inline]
    fn consume(&mut self, n: u32) {
        self.buffer <<= n;
        self.count -= n;
    }

    /// The next `n` bits (1..=16) as a number.
    #[inline]
    fn take(&mut self, n: u32) -> u32 {
        let value = self.peek(n);
        self.consume(n);
        value
    }

    /// Whether bits past the data's end were read.
    fn overran(&self) -> bool {
        self.count < self.padding
    }

    /// Drops the partial byte (restart markers and the scan's end are byte-aligned) and
    /// returns the position of the first byte not yet read: whole data bytes still
    /// buffered are given back.
    fn align(&mut self) -> usize {
        let whole = self.count.saturating_sub(self.padding) / 8;
        let mut pos = self.pos;
        // Walk back over the buffered bytes, an FF 00 pair counting as one.
        for _ in 0..whole {
            pos -= 1;
            if pos > 0 && self.bytes[pos] == 0 && self.bytes[pos - 1] == 0xff {
                pos -= 1;
            }
        }
        *self = Self::new(self.bytes, pos);
        pos
    }
}

struct ScanComponent {
    /// Index into the frame's components (and the progressive coefficient masks).
    index: usize,
    blocks_h: usize,
    blocks_v: usize,
    /// Blocks across and down in a non-interleaved scan.
    width_blocks: usize,
    height_blocks: usize,
    dc: usize,
    ac: usize,
}

/// What a scan codes, from its spectral band (Ss..=Se) and successive approximation (Ah).
#[derive(Clone, Copy, PartialEq)]
enum Pass {
    Sequential,
    DcFirst,
    DcRefine,
    AcFirst { start: usize, end: usize },
    AcRefine { start: usize, end: usize },
}

struct Scan {
    components: Vec<ScanComponent>,
    pass: Pass,
}

impl Scan {
    fn parse(
        s: &[u8],
        frame: &Frame,
        tables: &[Option<Huffman>; 8],
        progressive: bool,
    ) -> Result<Self, String> {
        let n = usize::from(*s.first().ok_or("an empty scan header")?);
        let band = s.get(1 + 2 * n..4 + 2 * n).ok_or("a short scan header")?;
        let (start, end, refine) = (usize::from(band[0]), usize::from(band[1]), band[2] >> 4 > 0);
        let pass = match (progressive, start, refine) {
            (false, _, _) => Pass::Sequential,
            (true, 0, false) => Pass::DcFirst,
            (true, 0, true) => Pass::DcRefine,
            (true, _, false) => Pass::AcFirst { start, end },
            (true, _, true) => Pass::AcRefine { start, end },
        };
        if progressive && (end > 63 || start > end || (start == 0) != (end == 0)) {
            return Err(format!("a progressive scan of band {start}..{end}"));
        }
        if matches!(pass, Pass::AcFirst { .. } | Pass::AcRefine { .. }) && n != 1 {
            return Err("a progressive AC scan of more than one component".into());
        }
        let (needs_dc, needs_ac) = match pass {
            Pass::Sequential => (true, true),
            Pass::DcFirst => (true, false),
            Pass::DcRefine => (false, false),
            Pass::AcFirst { .. } | Pass::AcRefine { .. } => (false, true),
        };
        let mut components = Vec::with_capacity(n);
        for i in 0..n {
            let c = s.get(1 + 2 * i..3 + 2 * i).ok_or("a short scan header")?;
            let index = frame
                .components
                .iter()
                .position(|f| f.id == c[0])
                .ok_or_else(|| format!("a scan of component {} not in the frame", c[0]))?;
            let component = &frame.components[index];
            let (dc, ac) = (usize::from(c[1] >> 4 & 3), 4 + usize::from(c[1] & 3));
            if (needs_dc && tables[dc].is_none()) || (needs_ac && tables[ac].is_none()) {
                return Err("a scan uses a Huffman table that is not defined".into());
            }
            let width = (frame.width * component.h).div_ceil(frame.h_max);
            let height = (frame.height * component.v).div_ceil(frame.v_max);
            components.push(ScanComponent {
                index,
                blocks_h: component.h,
                blocks_v: component.v,
                width_blocks: width.div_ceil(8),
                height_blocks: height.div_ceil(8),
                dc,
                ac,
            });
        }
        if components.is_empty() {
            return Err("a scan with no components".into());
        }
        Ok(Self { components, pass })
    }

    /// Decodes every block's codes from `pos`; returns where the scan's data ends (at the
    /// next marker). `nonzero` holds, per component and block, which coefficients earlier
    /// progressive scans made nonzero (refinement scans read a bit for each).
    fn walk(
        &self,
        bytes: &[u8],
        pos: usize,
        frame: &Frame,
        restart_interval: usize,
        tables: &[Option<Huffman>; 8],
        nonzero: &mut [Vec<u64>],
    ) -> Result<usize, String> {
        let (mcus, blocks_per_mcu): (usize, Vec<usize>) = if self.components.len() == 1 {
            let c = &self.components[0];
            (c.width_blocks * c.height_blocks, vec![1])
        } else {
            let across = frame.width.div_ceil(8 * frame.h_max);
            let down = frame.height.div_ceil(8 * frame.v_max);
            (
                across * down,
                self.components
                    .iter()
                    .map(|c| c.blocks_h * c.blocks_v)
                    .collect(),
            )
        };
        let mut bits = BitReader::new(bytes, pos);
        let mut eob_run = 0u32;
        let table = |i: usize| tables[i].as_ref().ok_or("a missing Huffman table");
        for mcu in 0..mcus {
            if restart_interval > 0 && mcu > 0 && mcu % restart_interval == 0 {
                let at = bits.align();
                let expected = 0xd0 + ((mcu / restart_interval - 1) % 8) as u8;
                if bytes.get(at..at + 2) != Some(&[0xff, expected]) {
                    return Err(format!(
                        "restart marker FF{expected:02X} missing before block {mcu}"
                    ));
                }
                bits = BitReader::new(bytes, at + 2);
                eob_run = 0;
            }
            for (c, &blocks) in self.components.iter().zip(&blocks_per_mcu) {
                for _ in 0..blocks {
                    match self.pass {
                        Pass::Sequential => {
                            dc_first(table(c.dc)?, &mut bits)?;
                            ac_sequential(table(c.ac)?, &mut bits)?;
                        }
                        Pass::DcFirst => dc_first(table(c.dc)?, &mut bits)?,
                        Pass::DcRefine => {
                            bits.ensure();
                            bits.consume(1);
                        }
                        Pass::AcFirst { start, end } | Pass::AcRefine { start, end } => {
                            let mask = nonzero[c.index]
                                .get_mut(mcu)
                                .ok_or("a block outside the component")?;
                            let walk = if matches!(self.pass, Pass::AcFirst { .. }) {
                                ac_first
                            } else {
                                ac_refine
                            };
                            walk(table(c.ac)?, &mut bits, (start, end), &mut eob_run, mask)?;
                        }
                    }
                }
            }
            if bits.overran() {
                return Err(PREMATURE_END.into());
            }
        }
        let end = bits.align();
        // The data must stop here: the next thing is a marker.
        let mut marker = end;
        while marker + 1 < bytes.len() && !(bytes[marker] == 0xff && bytes[marker + 1] != 0) {
            marker += 1;
        }
        if marker - end > TOLERATED_LEFTOVER {
            return Err(format!(
                "{} bytes of compressed data left after the last block",
                marker - end
            ));
        }
        Ok(marker)
    }
}

/// A DC difference: its size category, then that many bits.
#[inline]
fn dc_first(dc: &Huffman, bits: &mut BitReader) -> Result<(), Fault> {
    bits.ensure();
    let size = dc.decode(bits)?;
    if size > 16 {
        return Err("a DC code out of range");
    }
    bits.consume(u32::from(size));
    Ok(())
}

/// The 63 AC coefficients of one block: (zero run, size) codes up to an end of block.
#[inline]
fn ac_sequential(ac: &Huffman, bits: &mut BitReader) -> Result<(), Fault> {
    let mut k = 1;
    while k < 64 {
        bits.ensure();
        let fast = ac.fast_ac[bits.peek(FAST_BITS) as usize];
        if fast != 0 {
            bits.consume(u32::from(fast >> 8));
            k += usize::from(fast & 0xff);
            continue;
        }
        let rs = ac.decode(bits)?;
        let (run, size) = (usize::from(rs >> 4), u32::from(rs & 15));
        if size == 0 {
            if run != 15 {
                return Ok(()); // end of block
            }
            k += 16;
        } else {
            bits.consume(size);
            k += run + 1;
        }
    }
    if k > 64 {
        return Err("a block with more than 64 coefficients");
    }
    Ok(())
}

/// The first pass over AC coefficients `start..=end` of one block in a progressive scan:
/// as sequential, with end-of-band runs that span blocks. Marks the coefficients it makes
/// nonzero.
fn ac_first(
    ac: &Huffman,
    bits: &mut BitReader,
    (start, end): (usize, usize),
    eob_run: &mut u32,
    nonzero: &mut u64,
) -> Result<(), Fault> {
    if *eob_run > 0 {
        *eob_run -= 1;
        return Ok(());
    }
    let mut k = start;
    while k <= end {
        bits.ensure();
        let rs = ac.decode(bits)?;
        let (run, size) = (usize::from(rs >> 4), u32::from(rs & 15));
        if size == 0 {
            if run != 15 {
                // End of band, for this block and 2^run - 1 + (run bits) more.
                if run > 0 {
                    *eob_run = (1 << run) - 1 + bits.take(run as u32);
                }
                return Ok(());
            }
            k += 16;
        } else {
            k += run;
            bits.consume(size);
            if k <= end {
                *nonzero |= 1 << k;
            }
            k += 1;
        }
    }
    if k > end + 1 {
        return Err("a block with coefficients past its band");
    }
    Ok(())
}

/// A successive-approximation refinement of AC coefficients `start..=end` (libjpeg's
/// decode_mcu_AC_refine): a correction bit for each coefficient already nonzero, and new
/// coefficients of magnitude one placed among the zeros.
fn ac_refine(
    ac: &Huffman,
    bits: &mut BitReader,
    (start, end): (usize, usize),
    eob_run: &mut u32,
    nonzero: &mut u64,
) -> Result<(), Fault> {
    let is_nonzero = |mask: u64, k: usize| mask >> k & 1 == 1;
    let mut k = start;
    if *eob_run == 0 {
        while k <= end {
            bits.ensure();
            let rs = ac.decode(bits)?;
            let (mut run, size) = (i32::from(rs >> 4), rs & 15);
            if size != 0 {
                if size != 1 {
                    return Err("a refinement code of size other than one");
                }
                bits.consume(1); // the new coefficient's sign
            } else if run != 15 {
                *eob_run = 1 << run;
                if run > 0 {
                    *eob_run += bits.take(run as u32);
                }
                break;
            }
            while k <= end {
                if is_nonzero(*nonzero, k) {
                    bits.ensure();
                    bits.consume(1); // its correction bit
                } else {
                    run -= 1;
                    if run < 0 {
                        break;
                    }
                }
                k += 1;
            }
            if size != 0 {
                if k > end {
                    return Err("a new coefficient past the band");
                }
                *nonzero |= 1 << k;
            }
            k += 1;
        }
    }
    if *eob_run > 0 {
        while k <= end {
            if is_nonzero(*nonzero, k) {
                bits.ensure();
                bits.consume(1);
            }
            k += 1;
        }
        *eob_run -= 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jpeg_encoder::{ColorType, Encoder, SamplingFactor};

    struct Encoding {
        size: (u16, u16),
        grey: bool,
        sampling: SamplingFactor,
        progressive: bool,
        restart: Option<u16>,
        optimized: bool,
    }

    fn encode(e: &Encoding) -> Vec<u8> {
        let (w, h) = e.size;
        let channels = if e.grey { 1 } else { 3 };
        let pixels: Vec<u8> = (0..usize::from(w) * usize::from(h) * channels)
            .map(|i| ((i * 37) ^ (i / 97 * 11)) as u8)
            .collect();
        let mut out = Vec::new();
        let mut encoder = Encoder::new(&mut out, 85);
        encoder.set_sampling_factor(e.sampling);
        encoder.set_progressive(e.progressive);
        encoder.set_optimized_huffman_tables(e.optimized);
        if let Some(interval) = e.restart {
            encoder.set_restart_interval(interval);
        }
        let color = if e.grey {
            ColorType::Luma
        } else {
            ColorType::Rgb
        };
        encoder.encode(&pixels, w, h, color).unwrap();
        out
    }

    fn encodings() -> Vec<Encoding> {
        let mut all = Vec::new();
        for size in [(1, 1), (17, 9), (64, 64), (333, 251)] {
            for (grey, sampling) in [
                (true, SamplingFactor::F_1_1),
                (false, SamplingFactor::F_1_1),
                (false, SamplingFactor::F_2_2),
                (false, SamplingFactor::F_2_1),
                (false, SamplingFactor::F_1_2),
                (false, SamplingFactor::F_4_1),
            ] {
                for progressive in [false, true] {
                    for restart in [None, Some(3)] {
                        // jpeg-encoder writes some colour progressive files with restart
                        // markers that libjpeg too calls corrupt ("premature end of data
                        // segment"): not a valid encoding to test on.
                        if progressive && restart.is_some() && !grey {
                            continue;
                        }
                        all.push(Encoding {
                            size,
                            grey,
                            sampling,
                            progressive,
                            restart,
                            optimized: progressive == restart.is_some(),
                        });
                    }
                }
            }
        }
        all
    }

    /// Where the first scan's compressed data starts, and where the file's last marker
    /// (end of image) is.
    fn scan_bounds(bytes: &[u8]) -> (usize, usize) {
        let sos = bytes.windows(2).position(|w| w == [0xff, 0xda]).unwrap();
        let len = usize::from(u16::from_be_bytes([bytes[sos + 2], bytes[sos + 3]]));
        (sos + 2 + len, bytes.len() - 2)
    }

    #[test]
    fn every_encoding_walks_clean_and_decodes() {
        for e in encodings() {
            let bytes = encode(&e);
            let what = format!(
                "{:?} grey {} {:?} progressive {} restart {:?}",
                e.size, e.grey, e.sampling as u8, e.progressive, e.restart
            );
            assert_eq!(check(&bytes), Ok(()), "{what}");
            assert!(image::load_from_memory(&bytes).is_ok(), "{what}");
        }
    }

    #[test]
    fn noise_in_the_compressed_data_is_found() {
        for (i, e) in encodings().iter().filter(|e| e.size.0 == 333).enumerate() {
            let mut bytes = encode(e);
            let (start, end) = scan_bounds(&bytes);
            let mut state = 0x9e37_79b9_u32 + i as u32;
            for b in &mut bytes[start + (end - start) / 4..end - (end - start) / 4] {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                *b = state as u8;
            }
            assert!(check(&bytes).is_err(), "case {i}");
        }
    }

    #[test]
    fn a_scan_cut_short_with_its_end_marker_put_back_is_found() {
        for e in encodings()
            .iter()
            .filter(|e| e.size.0 == 333 && !e.progressive)
        {
            let bytes = encode(e);
            let (start, end) = scan_bounds(&bytes);
            let mut cut = bytes[..(start + end) / 2].to_vec();
            cut.extend_from_slice(&[0xff, 0xd9]);
            assert!(
                image::load_from_memory(&cut).is_ok(),
                "the lenient decoder accepts it"
            );
            assert_eq!(check(&cut), Err(PREMATURE_END.to_string()));
        }
    }

    #[test]
    fn data_left_after_the_last_block_is_found_a_few_padding_bytes_are_not() {
        for e in encodings().iter().filter(|e| e.size.0 == 333 && !e.grey) {
            let bytes = encode(e);
            let (_, end) = scan_bounds(&bytes);
            for (extra, refused) in [(TOLERATED_LEFTOVER, false), (200, true)] {
                let mut longer = bytes[..end].to_vec();
                longer.extend((0..extra).map(|i| (i % 200) as u8 + 1));
                longer.extend_from_slice(&bytes[end..]);
                let verdict = check(&longer);
                assert_eq!(verdict.is_err(), refused, "{extra} bytes: {verdict:?}");
            }
        }
    }

    #[test]
    fn restart_markers_out_of_order_are_found() {
        let e = Encoding {
            size: (333, 251),
            grey: false,
            sampling: SamplingFactor::F_2_2,
            progressive: false,
            restart: Some(3),
            optimized: false,
        };
        let mut bytes = encode(&e);
        let (start, _) = scan_bounds(&bytes);
        // The second restart marker (FF D1) renumbered to FF D5.
        let at = start
            + bytes[start..]
                .windows(2)
                .position(|w| w == [0xff, 0xd1])
                .unwrap();
        bytes[at + 1] = 0xd5;
        let msg = check(&bytes).unwrap_err();
        assert!(msg.contains("restart marker FFD1"), "{msg}");
    }
}
