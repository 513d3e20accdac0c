//! The producer fields of v2 record batches, read and rewritten in place.
//!
//! A Produce request carries each partition's records as one or more record batches. Since magic 2 (Kafka
//! 0.11) every batch header names its producer (id, epoch) and first sequence number, and a CRC-32C covers
//! everything from the attributes field to the end of the batch, so a batch whose producer is rewritten gets
//! its CRC recomputed. Records themselves are never touched.

use bytes::{Bytes, BytesMut};

/// Header offsets of a v2 record batch (`DefaultRecordBatch` in Apache Kafka).
const LENGTH_OFFSET: usize = 8;
const MAGIC_OFFSET: usize = 16;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
const PRODUCER_ID_OFFSET: usize = 43;
const PRODUCER_EPOCH_OFFSET: usize = 51;
const HEADER_SIZE: usize = 61;
/// The bytes before the batch length counts: base offset and the length itself.
const LOG_OVERHEAD: usize = 12;
/// Attribute bit of a batch written inside a transaction.
const TRANSACTIONAL: u16 = 0x10;

/// The producer a batch was written by; `id` -1 for a producer that is not idempotent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchProducer {
    /// The producer id.
    pub id: i64,
    /// The producer epoch.
    pub epoch: i16,
    /// Whether the batch belongs to a transaction.
    pub transactional: bool,
}

/// The whole v2 batches of `records`, as (start, end) byte ranges. Stops at the first batch that is not v2 or
/// does not fit (a client's truncated last batch is the broker's to refuse).
fn batches(records: &[u8]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let header = records.get(at..at.checked_add(HEADER_SIZE)?)?;
        if header[MAGIC_OFFSET] != 2 {
            return None;
        }
        let length = i32::from_be_bytes(header[LENGTH_OFFSET..LENGTH_OFFSET + 4].try_into().ok()?);
        let end = at.checked_add(LOG_OVERHEAD)?.checked_add(usize::try_from(length).ok()?)?;
        if end > records.len() || end < at + HEADER_SIZE {
            return None;
        }
        let range = (at, end);
        at = end;
        Some(range)
    })
}

fn producer_at(batch: &[u8]) -> BatchProducer {
    let field = |at: usize, len: usize| &batch[at..at + len];
    let attributes = u16::from_be_bytes([batch[ATTRIBUTES_OFFSET], batch[ATTRIBUTES_OFFSET + 1]]);
    let mut id = [0u8; 8];
    id.copy_from_slice(field(PRODUCER_ID_OFFSET, 8));
    BatchProducer {
        id: i64::from_be_bytes(id),
        epoch: i16::from_be_bytes([batch[PRODUCER_EPOCH_OFFSET], batch[PRODUCER_EPOCH_OFFSET + 1]]),
        transactional: attributes & TRANSACTIONAL != 0,
    }
}

/// The producer of every v2 batch in `records`.
pub fn producers(records: &[u8]) -> impl Iterator<Item = BatchProducer> + '_ {
    batches(records).map(|(start, end)| producer_at(&records[start..end]))
}

/// `records` with every batch of producer `from` written as producer `to` (id and epoch; sequence numbers
/// unchanged), CRCs recomputed; `None` when no batch is `from`'s (nothing is copied then).
pub fn rewrite_producer(records: &Bytes, from: BatchProducer, to: (i64, i16)) -> Option<Bytes> {
    let matching: Vec<(usize, usize)> =
        batches(records).filter(|&(start, end)| producer_at(&records[start..end]) == from).collect();
    if matching.is_empty() {
        return None;
    }
    let mut out = BytesMut::from(&records[..]);
    for (start, end) in matching {
        let batch = &mut out[start..end];
        batch[PRODUCER_ID_OFFSET..PRODUCER_ID_OFFSET + 8].copy_from_slice(&to.0.to_be_bytes());
        batch[PRODUCER_EPOCH_OFFSET..PRODUCER_EPOCH_OFFSET + 2].copy_from_slice(&to.1.to_be_bytes());
        let crc = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
        batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    }
    Some(out.freeze())
}

#[cfg(test)]
mod tests {
    use franzgate_api::kafka_protocol::records::{
        Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    use super::*;

    /// Two batches of `producer`, as the Java client and librdkafka write them (encoded by kafka-protocol).
    fn two_batches(producer: BatchProducer, first_sequence: i32) -> Bytes {
        let mut out = BytesMut::new();
        for batch in 0..2 {
            let records: Vec<Record> = (0..3)
                .map(|i| Record {
                    transactional: producer.transactional,
                    control: false,
                    partition_leader_epoch: 0,
                    producer_id: producer.id,
                    producer_epoch: producer.epoch,
                    timestamp_type: TimestampType::Creation,
                    offset: i,
                    sequence: first_sequence + batch * 3 + i as i32,
                    timestamp: 1_700_000_000_000,
                    key: Some(Bytes::from(format!("key-{batch}-{i}"))),
                    value: Some(Bytes::from_static(b"value")),
                    headers: Default::default(),
                    delete_horizon: false,
                })
                .collect();
            let options = RecordEncodeOptions { version: 2, compression: Compression::None };
            RecordBatchEncoder::encode(&mut out, &records, &options).expect("encode");
        }
        out.freeze()
    }

    #[test]
    fn reads_the_producer_of_every_batch() {
        let producer = BatchProducer { id: 4711, epoch: 3, transactional: true };
        let records = two_batches(producer, 935);
        assert_eq!(producers(&records).collect::<Vec<_>>(), vec![producer, producer]);
    }

    #[test]
    fn a_rewritten_batch_keeps_its_records_and_sequences_and_passes_the_crc_check() {
        let from = BatchProducer { id: 1, epoch: 0, transactional: false };
        let records = two_batches(from, 935);
        let rewritten = rewrite_producer(&records, from, (9001, 2)).expect("rewritten");
        let to = BatchProducer { id: 9001, epoch: 2, transactional: false };
        assert_eq!(producers(&rewritten).collect::<Vec<_>>(), vec![to, to]);
        // The decoder verifies each batch's CRC.
        let mut buf = rewritten.clone();
        let decoded = RecordBatchDecoder::decode_all(&mut buf).expect("the CRCs hold");
        let records: Vec<_> = decoded.into_iter().flat_map(|set| set.records).collect();
        assert_eq!(records.len(), 6);
        assert_eq!(records.iter().map(|r| r.sequence).collect::<Vec<_>>(), vec![935, 936, 937, 938, 939, 940]);
        assert!(records.iter().all(|r| r.producer_id == 9001 && r.producer_epoch == 2));
        assert_eq!(records[4].key.as_deref(), Some(&b"key-1-1"[..]));
    }

    #[test]
    fn batches_of_another_producer_and_truncated_bytes_are_left_alone() {
        let from = BatchProducer { id: 1, epoch: 0, transactional: false };
        let records = two_batches(from, 0);
        assert!(rewrite_producer(&records, BatchProducer { epoch: 1, ..from }, (2, 0)).is_none());
        let truncated = records.slice(..records.len() - 1);
        assert_eq!(producers(&truncated).count(), 1, "the whole first batch only");
        assert_eq!(producers(&records[..30]).count(), 0);
    }
}
