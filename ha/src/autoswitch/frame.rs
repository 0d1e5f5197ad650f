//! The AutoSwitch HA wire (Java `AutoSwitchHAClient` /
//! `AutoSwitchHAConnection`, 5.1.1+): every message starts with its
//! sender's state as an int32 (1 = HANDSHAKE, 2 = TRANSFER); integers are
//! big-endian.
//!
//! ```text
//! slave → master HANDSHAKE (16)     state=1 | i16 syncFromLastFile | i16 asyncLearner | i64 brokerId
//! slave → master TRANSFER  (12)     state=2 | i64 slaveMaxOffset
//! master → slave HANDSHAKE (20+12n) state=1 | i32 bodySize=12n | i64 maxPhyOffset | i32 lastEpoch
//!                                   | n × (i32 epoch | i64 startOffset)
//! master → slave TRANSFER  (36+len) state=2 | i32 bodySize | i64 offset | i32 epoch
//!                                   | i64 epochStartOffset | i64 confirmOffset | data
//! ```
//!
//! Decoders take what is buffered and return `Ok(None)` until a whole
//! message is there; anything else a peer can send is an error, never a
//! panic.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use store::EpochEntry;

pub const STATE_HANDSHAKE: i32 = 1;
pub const STATE_TRANSFER: i32 = 2;
/// Slave handshake: state + two int16 flags + broker id.
pub const SLAVE_HANDSHAKE_SIZE: usize = 16;
/// Slave offset report: state + max offset.
pub const SLAVE_REPORT_SIZE: usize = 12;
/// Master handshake header, before the epoch entries.
pub const MASTER_HANDSHAKE_HEADER_SIZE: usize = 20;
pub const EPOCH_ENTRY_SIZE: usize = 12;
/// Master transfer header, before the data.
pub const TRANSFER_HEADER_SIZE: usize = 36;
/// Largest body a decoder accepts from a master (Java's slave buffer is
/// 4 MiB, header included).
pub const MAX_MASTER_BODY: usize = 4 * 1024 * 1024 - TRANSFER_HEADER_SIZE;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("unexpected HA state {0} on the wire")]
    UnknownState(i32),
    #[error("bad HA body size {size}")]
    BadBodySize { size: i32 },
    #[error("HA body of {len} bytes exceeds {max}")]
    TooLarge { len: usize, max: usize },
}

/// Slave → master hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlaveHandshake {
    pub sync_from_last_file: bool,
    pub async_learner: bool,
    /// The slave's controller broker id.
    pub broker_id: i64,
}

/// What a slave sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlaveMessage {
    Handshake(SlaveHandshake),
    /// TRANSFER report: the slave's commit-log max offset.
    Report {
        max_offset: i64,
    },
}

/// Master → slave hello: its log's end and epoch list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterHandshake {
    pub max_offset: i64,
    /// The last entry's epoch, -1 without entries.
    pub last_epoch: i32,
    pub entries: Vec<EpochEntry>,
}

/// The 36-byte header of a master's TRANSFER frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferHeader {
    /// Data bytes after the header (0 = heartbeat).
    pub body_size: u32,
    /// Commit-log offset of the first data byte.
    pub offset: i64,
    /// The epoch that wrote these bytes, and where it starts.
    pub epoch: i32,
    pub epoch_start_offset: i64,
    pub confirm_offset: i64,
}

/// What a master sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterMessage {
    Handshake(MasterHandshake),
    Transfer { header: TransferHeader, data: Bytes },
}

impl SlaveHandshake {
    pub fn encode(&self) -> [u8; SLAVE_HANDSHAKE_SIZE] {
        let mut b = [0u8; SLAVE_HANDSHAKE_SIZE];
        b[..4].copy_from_slice(&STATE_HANDSHAKE.to_be_bytes());
        b[4..6].copy_from_slice(&i16::from(self.sync_from_last_file).to_be_bytes());
        b[6..8].copy_from_slice(&i16::from(self.async_learner).to_be_bytes());
        b[8..].copy_from_slice(&self.broker_id.to_be_bytes());
        b
    }
}

pub fn encode_report(max_offset: i64) -> [u8; SLAVE_REPORT_SIZE] {
    let mut b = [0u8; SLAVE_REPORT_SIZE];
    b[..4].copy_from_slice(&STATE_TRANSFER.to_be_bytes());
    b[4..].copy_from_slice(&max_offset.to_be_bytes());
    b
}

fn peek_i32(b: &[u8]) -> Option<i32> {
    Some(i32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}

/// Master side: the next whole message from a slave.
pub fn decode_slave(buf: &mut BytesMut) -> Result<Option<SlaveMessage>, FrameError> {
    let Some(state) = peek_i32(buf) else {
        return Ok(None);
    };
    match state {
        STATE_HANDSHAKE => {
            if buf.len() < SLAVE_HANDSHAKE_SIZE {
                return Ok(None);
            }
            buf.advance(4);
            let sync_from_last_file = buf.get_i16() != 0;
            let async_learner = buf.get_i16() != 0;
            let broker_id = buf.get_i64();
            Ok(Some(SlaveMessage::Handshake(SlaveHandshake {
                sync_from_last_file,
                async_learner,
                broker_id,
            })))
        }
        STATE_TRANSFER => {
            if buf.len() < SLAVE_REPORT_SIZE {
                return Ok(None);
            }
            buf.advance(4);
            Ok(Some(SlaveMessage::Report {
                max_offset: buf.get_i64(),
            }))
        }
        other => Err(FrameError::UnknownState(other)),
    }
}

impl MasterHandshake {
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(MASTER_HANDSHAKE_HEADER_SIZE + EPOCH_ENTRY_SIZE * self.entries.len());
        out.put_i32(STATE_HANDSHAKE);
        out.put_i32((EPOCH_ENTRY_SIZE * self.entries.len()) as i32);
        out.put_i64(self.max_offset);
        out.put_i32(self.last_epoch);
        for e in &self.entries {
            out.put_i32(e.epoch);
            out.put_i64(e.start_offset);
        }
    }
}

impl TransferHeader {
    pub fn encode(&self) -> [u8; TRANSFER_HEADER_SIZE] {
        let mut b = [0u8; TRANSFER_HEADER_SIZE];
        b[..4].copy_from_slice(&STATE_TRANSFER.to_be_bytes());
        b[4..8].copy_from_slice(&self.body_size.to_be_bytes());
        b[8..16].copy_from_slice(&self.offset.to_be_bytes());
        b[16..20].copy_from_slice(&self.epoch.to_be_bytes());
        b[20..28].copy_from_slice(&self.epoch_start_offset.to_be_bytes());
        b[28..36].copy_from_slice(&self.confirm_offset.to_be_bytes());
        b
    }
}

/// Slave side: the next whole message from a master.
pub fn decode_master(buf: &mut BytesMut) -> Result<Option<MasterMessage>, FrameError> {
    let Some(state) = peek_i32(buf) else {
        return Ok(None);
    };
    let header = match state {
        STATE_HANDSHAKE => MASTER_HANDSHAKE_HEADER_SIZE,
        STATE_TRANSFER => TRANSFER_HEADER_SIZE,
        other => return Err(FrameError::UnknownState(other)),
    };
    if buf.len() < header {
        return Ok(None);
    }
    let size = peek_i32(&buf[4..]).unwrap_or(0);
    let body = usize::try_from(size).map_err(|_| FrameError::BadBodySize { size })?;
    if body > MAX_MASTER_BODY {
        return Err(FrameError::TooLarge {
            len: body,
            max: MAX_MASTER_BODY,
        });
    }
    if state == STATE_HANDSHAKE && body % EPOCH_ENTRY_SIZE != 0 {
        return Err(FrameError::BadBodySize { size });
    }
    if buf.len() < header + body {
        return Ok(None);
    }
    buf.advance(8);
    if state == STATE_HANDSHAKE {
        let max_offset = buf.get_i64();
        let last_epoch = buf.get_i32();
        let entries = (0..body / EPOCH_ENTRY_SIZE)
            .map(|_| EpochEntry {
                epoch: buf.get_i32(),
                start_offset: buf.get_i64(),
            })
            .collect();
        return Ok(Some(MasterMessage::Handshake(MasterHandshake {
            max_offset,
            last_epoch,
            entries,
        })));
    }
    let offset = buf.get_i64();
    let epoch = buf.get_i32();
    let epoch_start_offset = buf.get_i64();
    let confirm_offset = buf.get_i64();
    let data = buf.split_to(body).freeze();
    Ok(Some(MasterMessage::Transfer {
        header: TransferHeader {
            body_size: body as u32,
            offset,
            epoch,
            epoch_start_offset,
            confirm_offset,
        },
        data,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    #[test]
    fn slave_handshake_golden() {
        let h = SlaveHandshake {
            sync_from_last_file: true,
            async_learner: false,
            broker_id: 2,
        };
        let golden = unhex("00000001 0001 0000 0000000000000002");
        assert_eq!(h.encode().to_vec(), golden);
        let mut b = BytesMut::from(&golden[..]);
        assert_eq!(decode_slave(&mut b), Ok(Some(SlaveMessage::Handshake(h))));
        assert!(b.is_empty());
    }

    #[test]
    fn slave_report_golden() {
        let golden = unhex("00000002 0000000000000384");
        assert_eq!(encode_report(900).to_vec(), golden);
        let mut b = BytesMut::from(&golden[..]);
        assert_eq!(
            decode_slave(&mut b),
            Ok(Some(SlaveMessage::Report { max_offset: 900 }))
        );
    }

    #[test]
    fn master_handshake_golden() {
        // §5: entries (1,0),(2,900), max 1500.
        let h = MasterHandshake {
            max_offset: 1500,
            last_epoch: 2,
            entries: vec![
                EpochEntry {
                    epoch: 1,
                    start_offset: 0,
                },
                EpochEntry {
                    epoch: 2,
                    start_offset: 900,
                },
            ],
        };
        let golden = unhex(
            "00000001 00000018 00000000000005dc 00000002
             00000001 0000000000000000
             00000002 0000000000000384",
        );
        let mut out = BytesMut::new();
        h.encode(&mut out);
        assert_eq!(out.to_vec(), golden);
        let mut b = BytesMut::from(&golden[..]);
        assert_eq!(decode_master(&mut b), Ok(Some(MasterMessage::Handshake(h))));
    }

    #[test]
    fn transfer_frame_golden() {
        let header = TransferHeader {
            body_size: 3,
            offset: 900,
            epoch: 2,
            epoch_start_offset: 900,
            confirm_offset: 1000,
        };
        let golden = unhex(
            "00000002 00000003 0000000000000384 00000002 0000000000000384 00000000000003e8 414243",
        );
        let mut frame = header.encode().to_vec();
        frame.extend_from_slice(b"ABC");
        assert_eq!(frame, golden);
        let mut b = BytesMut::from(&golden[..]);
        assert_eq!(
            decode_master(&mut b),
            Ok(Some(MasterMessage::Transfer {
                header,
                data: Bytes::from_static(b"ABC")
            }))
        );
    }

    /// Every split point of a stream of messages decodes to the same
    /// messages.
    #[test]
    fn partial_buffers_decode_incrementally() {
        let mut stream = BytesMut::new();
        MasterHandshake {
            max_offset: 7,
            last_epoch: 1,
            entries: vec![EpochEntry {
                epoch: 1,
                start_offset: 0,
            }],
        }
        .encode(&mut stream);
        let h = TransferHeader {
            body_size: 5,
            offset: 0,
            epoch: 1,
            epoch_start_offset: 0,
            confirm_offset: 0,
        };
        stream.extend_from_slice(&h.encode());
        stream.extend_from_slice(b"hello");
        let hb = TransferHeader {
            body_size: 0,
            offset: 5,
            ..h
        };
        stream.extend_from_slice(&hb.encode());
        let whole = stream.freeze();
        let decode_all = |chunks: &[&[u8]]| {
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            for c in chunks {
                buf.extend_from_slice(c);
                while let Some(m) = decode_master(&mut buf).expect("valid") {
                    out.push(m);
                }
            }
            assert!(buf.is_empty());
            out
        };
        let want = decode_all(&[&whole]);
        assert_eq!(want.len(), 3);
        for cut in 0..whole.len() {
            assert_eq!(
                decode_all(&[&whole[..cut], &whole[cut..]]),
                want,
                "cut {cut}"
            );
        }
        let bytes: Vec<&[u8]> = whole.chunks(1).collect();
        assert_eq!(decode_all(&bytes), want);

        let mut s = BytesMut::new();
        s.extend_from_slice(
            &SlaveHandshake {
                sync_from_last_file: false,
                async_learner: true,
                broker_id: -1,
            }
            .encode(),
        );
        s.extend_from_slice(&encode_report(1 << 40));
        let whole = s.freeze();
        for cut in 0..whole.len() {
            let mut buf = BytesMut::from(&whole[..cut]);
            let mut n = 0;
            while decode_slave(&mut buf).expect("valid").is_some() {
                n += 1;
            }
            buf.extend_from_slice(&whole[cut..]);
            while decode_slave(&mut buf).expect("valid").is_some() {
                n += 1;
            }
            assert_eq!(n, 2, "cut {cut}");
        }
    }

    #[test]
    fn junk_is_an_error_never_a_panic() {
        let mut b = BytesMut::from(&[0, 0, 0, 3, 1, 2, 3][..]);
        assert_eq!(decode_slave(&mut b), Err(FrameError::UnknownState(3)));
        let mut b = BytesMut::from(&unhex("00000002 ffffffff")[..]);
        b.extend_from_slice(&[0; 28]);
        assert_eq!(
            decode_master(&mut b),
            Err(FrameError::BadBodySize { size: -1 })
        );
        let mut b = BytesMut::from(&unhex("00000001 0000000d")[..]);
        b.extend_from_slice(&[0; 12]);
        assert_eq!(
            decode_master(&mut b),
            Err(FrameError::BadBodySize { size: 13 })
        );
        let mut b = BytesMut::from(&unhex("00000002 7fffffff")[..]);
        b.extend_from_slice(&[0; 28]);
        assert!(matches!(
            decode_master(&mut b),
            Err(FrameError::TooLarge { .. })
        ));
        // Pseudo-random junk: decoding ends in an error or asks for more.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..2000 {
            let mut v = Vec::new();
            for _ in 0..(x % 64) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                v.push((x & 3) as u8);
            }
            let mut b = BytesMut::from(&v[..]);
            for _ in 0..64 {
                match decode_master(&mut b) {
                    Ok(Some(_)) => continue,
                    _ => break,
                }
            }
            let mut b = BytesMut::from(&v[..]);
            for _ in 0..64 {
                match decode_slave(&mut b) {
                    Ok(Some(_)) => continue,
                    _ => break,
                }
            }
        }
    }
}
