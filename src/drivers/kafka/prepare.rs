//! What the consumer thread does to a record before its task sees it:
//! parsing an input record and decoding a repartition record depend on
//! nothing a task holds, so they run beside the tasks ([`super::pipeline`]).

use super::repartition::{FormatError, Repartitioned};
use super::topics::AppTopics;
use crate::config::Config;
use crate::domain::{DeadLetter, Micros, Parsed};
use crate::parse::{parse_record, text_of, DeadLetterRecord, Headers, ParseContext, RawRecord};
use anyhow::Result;
use neonblue_topology::kafka::{ChangelogProducer, KafkaError};
use rdkafka::message::{BorrowedMessage, Header, Headers as _, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureRecord};
use rdkafka::Message;

/// A consumed record, ready for its task.
pub enum Consumed {
    /// A record of an input partition, parsed.
    Input {
        /// Its router task ([`AppTopics::router_index`]).
        router: u32,
        /// Its offset.
        offset: i64,
        /// What the parser made of it.
        parsed: Parsed,
        /// Its dead-letter record, when `parsed` rejects it.
        dead_letter: Option<Box<DeadLetterOut>>,
    },
    /// A record of a repartition partition, decoded.
    Repartition {
        /// Its partition (its join task).
        partition: i32,
        /// Its offset.
        offset: i64,
        /// The record, or why this version cannot read it.
        record: Result<Repartitioned, FormatError>,
    },
}

impl Consumed {
    /// The router and event time of an input record that moves its
    /// partition's stream time ([`crate::domain::Change::time`]; a snapshot read holds the
    /// stream time back, so not it).
    pub fn input_time(&self) -> Option<(u32, Micros)> {
        let Consumed::Input {
            router,
            parsed:
                Parsed::Change {
                    change,
                    snapshot: false,
                    ..
                },
            ..
        } = self
        else {
            return None;
        };
        Some((*router, change.time()?))
    }
}

/// A rejected input record as the DLQ topic gets it: its key, value and
/// headers as received, and `neonblue.*` headers saying why.
pub struct DeadLetterOut {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: OwnedHeaders,
}

impl DeadLetterOut {
    fn new(m: &BorrowedMessage<'_>, raw: &RawRecord<'_>, dead: &DeadLetter) -> Self {
        let mut headers = OwnedHeaders::new();
        if let Some(h) = m.headers() {
            for h in h.iter() {
                headers = headers.insert(Header {
                    key: h.key,
                    value: h.value,
                });
            }
        }
        for (key, value) in (DeadLetterRecord { record: raw, dead }).kafka_headers() {
            headers = headers.insert(Header {
                key,
                value: Some(&value),
            });
        }
        DeadLetterOut {
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            headers,
        }
    }

    /// Produces the record to `topic`.
    pub fn send(
        self,
        producer: &ChangelogProducer,
        topic: &str,
    ) -> Result<DeliveryFuture, KafkaError> {
        let DeadLetterOut {
            key,
            value,
            headers,
        } = self;
        let mut record = FutureRecord::<[u8], [u8]>::to(topic).headers(headers);
        if let Some(k) = &key {
            record = record.key(k.as_slice());
        }
        if let Some(v) = &value {
            record = record.payload(v.as_slice());
        }
        producer.send_record(record)
    }
}

/// Prepares consumed records for their tasks.
pub struct Prepare {
    ctx: ParseContext,
    topics: AppTopics,
}

impl Prepare {
    /// Parses as `cfg.source` says, with the clock pinned at `now`.
    pub fn new(cfg: &Config, now: Micros, topics: AppTopics) -> Self {
        Prepare {
            ctx: ParseContext::new(cfg.source.clone(), now),
            topics,
        }
    }

    /// Parses an input record or decodes a repartition record. Fails only
    /// for a record of a partition the application does not know.
    pub fn record(&self, m: &BorrowedMessage<'_>) -> Result<Consumed> {
        let (topic, partition, offset) = (m.topic(), m.partition(), m.offset());
        if topic == self.topics.repartition {
            return Ok(Consumed::Repartition {
                partition,
                offset,
                record: Repartitioned::decode(m.payload()),
            });
        }
        let router = self.topics.router_index(topic, partition)?;
        let key = m.key().map(text_of);
        let value = m.payload().map(text_of);
        // Only a layout that reads them pays for parsing the headers.
        let pairs: Vec<(String, String)> = self
            .ctx
            .source
            .layout
            .reads_headers()
            .then(|| m.headers())
            .flatten()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        (
                            h.key.to_string(),
                            h.value.map(|v| text_of(v).into_owned()).unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let raw = RawRecord {
            topic,
            partition,
            offset,
            key: key.as_deref(),
            value: value.as_deref(),
            headers: if pairs.is_empty() {
                Headers::None
            } else {
                Headers::Pairs(&pairs)
            },
        };
        let mut parsed = parse_record(&self.ctx, &raw);
        // Changes the envelope does not date are dated by the Kafka record.
        parsed.date_if_undated(
            m.timestamp()
                .to_millis()
                .and_then(|ms| ms.checked_mul(crate::time::MILLISECOND)),
        );
        let dead_letter = match &parsed {
            Parsed::Dead(dead) => Some(Box::new(DeadLetterOut::new(m, &raw, dead))),
            _ => None,
        };
        Ok(Consumed::Input {
            router,
            offset,
            parsed,
            dead_letter,
        })
    }
}
