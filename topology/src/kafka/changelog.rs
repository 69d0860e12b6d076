//! Writing and reading changelog partitions.

use super::{KafkaError, ADMIN_TIMEOUT};
use neonblue_state::ChangeRecord;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::time::{Duration, Instant};

/// An idempotent producer for changelog, checkpoint and repartition records.
#[derive(Clone)]
pub struct ChangelogProducer {
    producer: FutureProducer,
}

impl ChangelogProducer {
    /// An idempotent producer (`acks=all`, ordered retries) on `base`;
    /// `linger.ms` 5, `compression.type` lz4 and `message.timeout.ms` 120 s
    /// unless `base` sets them.
    pub fn new(base: &ClientConfig) -> Result<Self, KafkaError> {
        let mut config = base.clone();
        config.set("enable.idempotence", "true");
        for (k, v) in [
            ("linger.ms", "5"),
            ("compression.type", "lz4"),
            ("message.timeout.ms", "120000"),
        ] {
            super::set_unless_given(&mut config, k, v);
        }
        let producer: FutureProducer = config.create()?;
        Ok(ChangelogProducer { producer })
    }

    /// The underlying producer.
    pub fn inner(&self) -> &FutureProducer {
        &self.producer
    }

    /// Queues one record for `topic`/`partition`; await the future for its offset.
    pub fn send(
        &self,
        topic: &str,
        partition: i32,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<DeliveryFuture, KafkaError> {
        let mut rec = FutureRecord::<[u8], [u8]>::to(topic)
            .partition(partition)
            .key(key);
        if let Some(v) = value {
            rec = rec.payload(v);
        }
        self.send_record(rec)
    }

    /// Queues a prepared record, waiting while the local queue is full
    /// (backpressure: never dropped).
    pub fn send_record<'a>(
        &self,
        mut rec: FutureRecord<'a, [u8], [u8]>,
    ) -> Result<DeliveryFuture, KafkaError> {
        loop {
            match self.producer.send_result(rec) {
                Ok(f) => return Ok(f),
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    r,
                )) => {
                    rec = r;
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }

    /// Waits for every delivery; returns the offset of the last one.
    pub fn await_all(futures: Vec<DeliveryFuture>) -> Result<Option<i64>, KafkaError> {
        let mut last = None;
        for f in futures {
            match futures::executor::block_on(f) {
                Ok(Ok(d)) => last = Some(d.offset),
                Ok(Err((e, _))) => return Err(e.into()),
                Err(_) => {
                    return Err(KafkaError::Timeout(
                        "producer dropped a delivery (shutting down?)".into(),
                    ))
                }
            }
        }
        Ok(last)
    }

    /// Writes store changes to one changelog partition and waits for them;
    /// returns the log end after them, or `None` when there were none.
    pub fn write_changes(
        &self,
        topic: &str,
        partition: i32,
        changes: &[ChangeRecord],
    ) -> Result<Option<i64>, KafkaError> {
        let futures = changes
            .iter()
            .map(|c| self.send(topic, partition, &c.key, c.value.as_deref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::await_all(futures)?.map(|o| o + 1))
    }
}

/// Reads one partition of a topic between two offsets, without a group.
pub struct PartitionReader {
    consumer: BaseConsumer,
}

/// What a poll of the reader gave.
enum Polled<'a> {
    Record(BorrowedMessage<'a>),
    /// The fetch position reached the end of the log.
    End,
    Nothing,
}

impl PartitionReader {
    /// A reader on `base` (no group, no commits).
    pub fn new(base: &ClientConfig) -> Result<Self, KafkaError> {
        let consumer: BaseConsumer = super::consumer_config(base)
            .set("group.id", "neonblue-restore")
            .set("enable.auto.commit", "false")
            // The end of a log is where a fetch says it is (see
            // `log_bounds`): its high watermark, as the logs read here
            // (changelogs, checkpoints) are written without transactions.
            .set("enable.partition.eof", "true")
            .set("isolation.level", "read_uncommitted")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", super::SHORT_READ_FETCH_WAIT_MS)
            .set("fetch.max.bytes", "52428800")
            .create()?;
        Ok(PartitionReader { consumer })
    }

    /// (start, end) of a partition's log. The end is confirmed by a fetch:
    /// some brokers (Tansu among them) answer ListOffsets with the first
    /// offset of the last batch, plus one, which would cut that batch off.
    pub fn log_bounds(&self, topic: &str, partition: i32) -> Result<(i64, i64), KafkaError> {
        let (low, listed) = self
            .consumer
            .fetch_watermarks(topic, partition, ADMIN_TIMEOUT)?;
        // From the last record ListOffsets knows of: the first fetch
        // response carries the end, with data or with the partition's EOF.
        self.assign(topic, partition, (listed - 1).max(low))?;
        let mut end = listed;
        let result = self.poll_until(topic, partition, |polled| {
            match polled {
                Polled::Record(m) => end = end.max(m.offset() + 1),
                Polled::End => {}
                Polled::Nothing => return false,
            }
            // Set by the response that delivered the record or the EOF
            // (`None` only if a failed response came after it: poll again).
            match super::fetched_log_end(self.consumer.client(), topic, partition) {
                Some(fetched) => {
                    end = end.max(fetched);
                    true
                }
                None => false,
            }
        });
        self.consumer.unassign()?;
        result.map(|()| (low, end))
    }

    /// Calls `f(offset, record)` for every record in `[from, to)`; a missing
    /// value is a tombstone. Compacted-away offsets are simply absent, and
    /// the read ends early where the log does (a `to` past its end).
    pub fn read(
        &self,
        topic: &str,
        partition: i32,
        from: i64,
        to: i64,
        mut f: impl FnMut(i64, ChangeRecord),
    ) -> Result<u64, KafkaError> {
        if from >= to {
            return Ok(0);
        }
        self.assign(topic, partition, from)?;
        let mut n = 0;
        let result = self.poll_until(topic, partition, |polled| match polled {
            Polled::Record(m) if m.offset() < from => false,
            Polled::Record(m) if m.offset() >= to => true,
            Polled::Record(m) => {
                let record = ChangeRecord {
                    key: m.key().unwrap_or_default().to_vec(),
                    value: m.payload().map(|p| p.to_vec()),
                };
                f(m.offset(), record);
                n += 1;
                m.offset() + 1 >= to
            }
            Polled::End => true,
            Polled::Nothing => false,
        });
        self.consumer.unassign()?;
        result.map(|()| n)
    }

    /// The last record of a partition (`None` when empty), e.g. a checkpoint.
    pub fn read_last(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Option<(i64, ChangeRecord)>, KafkaError> {
        let (low, high) = self.log_bounds(topic, partition)?;
        if high <= low {
            return Ok(None);
        }
        // The last offset may have been compacted away: look back a little.
        let mut from = (high - 1).max(low);
        loop {
            let mut last = None;
            self.read(topic, partition, from, high, |o, r| last = Some((o, r)))?;
            if last.is_some() || from == low {
                return Ok(last);
            }
            from = (from - 64).max(low);
        }
    }

    /// The offset and timestamp (ms since the epoch) of the first record
    /// at or after `offset`; `None` when there is none, or it has no time.
    pub fn timestamp_from(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<Option<(i64, i64)>, KafkaError> {
        let (_, end) = self.log_bounds(topic, partition)?;
        if offset >= end {
            return Ok(None);
        }
        self.assign(topic, partition, offset)?;
        let mut found = None;
        let result = self.poll_until(topic, partition, |polled| match polled {
            Polled::Record(m) if m.offset() < offset => false,
            Polled::Record(m) => {
                found = m.timestamp().to_millis().map(|t| (m.offset(), t));
                true
            }
            Polled::End => true,
            Polled::Nothing => false,
        });
        self.consumer.unassign()?;
        result.map(|()| found)
    }

    fn assign(&self, topic: &str, partition: i32, from: i64) -> Result<(), KafkaError> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(from))?;
        Ok(self.consumer.assign(&tpl)?)
    }

    /// Polls the assigned partition until `done` says so. An error is
    /// retried (a broker may be restarting) until nothing has arrived for
    /// [`ADMIN_TIMEOUT`]; then the read fails with it.
    fn poll_until(
        &self,
        topic: &str,
        partition: i32,
        mut done: impl FnMut(Polled) -> bool,
    ) -> Result<(), KafkaError> {
        let mut last_progress = Instant::now();
        let mut last_error = None;
        loop {
            let polled = match self.consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    last_progress = Instant::now();
                    Polled::Record(m)
                }
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => Polled::End,
                Some(Err(e)) => {
                    tracing::warn!(topic, partition, error = %e, "reading a partition (retried)");
                    last_error = Some(e);
                    Polled::Nothing
                }
                None => Polled::Nothing,
            };
            if done(polled) {
                return Ok(());
            }
            if last_progress.elapsed() > ADMIN_TIMEOUT {
                return Err(match last_error {
                    Some(e) => e.into(),
                    None => KafkaError::Timeout(format!(
                        "no record of {topic}[{partition}] for {ADMIN_TIMEOUT:?}"
                    )),
                });
            }
        }
    }
}
