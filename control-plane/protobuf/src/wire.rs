//! Protobuf wire primitives: a bounds-checked reader and a writer.

use crate::ProtobufError;

/// A protobuf wire type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WireType {
    Varint,
    Fixed64,
    Len,
    Fixed32,
}

impl WireType {
    pub(crate) fn name(self) -> &'static str {
        match self {
            WireType::Varint => "varint",
            WireType::Fixed64 => "fixed64",
            WireType::Len => "length-delimited",
            WireType::Fixed32 => "fixed32",
        }
    }
}

/// Reads protobuf fields from a byte slice; every read is bounds-checked.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn is_at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(crate) fn varint(&mut self) -> Result<u64, ProtobufError> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(ProtobufError::truncated("varint"));
            };
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err(ProtobufError::malformed("varint longer than 64 bits"));
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ProtobufError::malformed("varint longer than 10 bytes"))
    }

    /// The next field's number and wire type, or `None` at the end.
    pub(crate) fn key(&mut self) -> Result<Option<(u32, WireType)>, ProtobufError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let wire = match key & 7 {
            0 => WireType::Varint,
            1 => WireType::Fixed64,
            2 => WireType::Len,
            5 => WireType::Fixed32,
            3 | 4 => {
                return Err(ProtobufError::malformed(
                    "groups are not used by Kubernetes",
                ));
            }
            _ => return Err(ProtobufError::malformed("invalid wire type")),
        };
        let tag = u32::try_from(key >> 3)
            .map_err(|_| ProtobufError::malformed("field number too large"))?;
        if tag == 0 {
            return Err(ProtobufError::malformed("field number 0"));
        }
        Ok(Some((tag, wire)))
    }

    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], ProtobufError> {
        let len = self.varint()?;
        let len =
            usize::try_from(len).map_err(|_| ProtobufError::truncated("length-delimited field"))?;
        let end = self
            .pos
            .checked_add(len)
            .filter(|end| *end <= self.buf.len())
            .ok_or_else(|| ProtobufError::truncated("length-delimited field"))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn fixed64(&mut self) -> Result<u64, ProtobufError> {
        let end = self.pos + 8;
        let b = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| ProtobufError::truncated("fixed64"))?;
        self.pos = end;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    pub(crate) fn skip(&mut self, wire: WireType) -> Result<(), ProtobufError> {
        match wire {
            WireType::Varint => self.varint().map(drop),
            WireType::Fixed64 => self.fixed64().map(drop),
            WireType::Len => self.bytes().map(drop),
            WireType::Fixed32 => {
                let end = self.pos + 4;
                if end > self.buf.len() {
                    return Err(ProtobufError::truncated("fixed32"));
                }
                self.pos = end;
                Ok(())
            }
        }
    }
}

/// Appends protobuf fields to a buffer.
#[derive(Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    pub(crate) fn key(&mut self, tag: u32, wire: WireType) {
        let w = match wire {
            WireType::Varint => 0,
            WireType::Fixed64 => 1,
            WireType::Len => 2,
            WireType::Fixed32 => 5,
        };
        self.varint((u64::from(tag) << 3) | w);
    }

    pub(crate) fn varint_field(&mut self, tag: u32, v: u64) {
        self.key(tag, WireType::Varint);
        self.varint(v);
    }

    pub(crate) fn bytes_field(&mut self, tag: u32, b: &[u8]) {
        self.key(tag, WireType::Len);
        self.varint(b.len() as u64);
        self.buf.extend_from_slice(b);
    }

    pub(crate) fn fixed64_field(&mut self, tag: u32, v: u64) {
        self.key(tag, WireType::Fixed64);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
}
