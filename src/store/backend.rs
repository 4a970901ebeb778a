//! Code both SQL backends run unchanged but for the sqlx database type. sqlx's
//! executor traits make generic functions over the database unwieldy (every call
//! needs a dozen bounds), so each piece is written once here as a macro and expanded
//! in `sqlite` and `postgres`, which keep only what really differs: connecting,
//! committing, locking. (SQLite's writes run on rusqlite in `sqlite/writer.rs`, so
//! the transaction side is PostgreSQL's alone.)

/// `bind_all` (apply [`Bind`](super::sql::Bind) values to a query) and `stored` (a
/// result row as a [`StoredResource`](super::StoredResource)) for one backend.
macro_rules! row_helpers {
    ($db:ty, $row:ty) => {
        pub(super) fn bind_all<'q>(
            mut q: sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>>,
            binds: &'q [$crate::store::sql::Bind],
        ) -> sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>> {
            use $crate::store::sql::Bind;
            for b in binds {
                q = match b {
                    Bind::Text(s) => q.bind(s.as_str()),
                    Bind::OptText(s) => q.bind(s.as_deref()),
                    Bind::Int(i) => q.bind(*i),
                    Bind::OptInt(i) => q.bind(*i),
                    Bind::Bool(v) => q.bind(*v),
                };
            }
            q
        }

        /// A domain event from the ten columns starting at `at` (see `events::list_events`).
        pub(super) fn event(row: &$row, at: usize) -> Result<$crate::store::EventRow, sqlx::Error> {
            use sqlx::Row;
            Ok($crate::store::events::event_row(
                row.try_get(at)?,
                row.try_get(at + 1)?,
                row.try_get(at + 2)?,
                row.try_get(at + 3)?,
                row.try_get(at + 4)?,
                row.try_get(at + 5)?,
                row.try_get(at + 6)?,
                row.try_get(at + 7)?,
                row.try_get(at + 8)?,
                row.try_get(at + 9)?,
            ))
        }

        pub(super) fn stored(row: &$row) -> Result<$crate::store::StoredResource, sqlx::Error> {
            use sqlx::Row;
            Ok($crate::store::StoredResource {
                rtype: row.try_get(0)?,
                id: row.try_get(1)?,
                version: row.try_get(2)?,
                last_updated: row.try_get(3)?,
                deleted: row.try_get(4)?,
                body: row.try_get::<Option<String>, _>(5)?.map(Into::into),
            })
        }
    };
}

/// `impl Store` with the read side (read, vread, history, search, read_many) shared;
/// the backend supplies `commit`, `ping` and `backend`, `self.fetch(&Sql)` and
/// `self.fetch_counted(&page, &count)` (both from one snapshot, so a total never
/// disagrees with its page).
macro_rules! impl_store {
    ($store:ty, $pool:ident, { $($backend_specific:tt)* }) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            async fn read(
                &self,
                rtype: &str,
                id: &str,
            ) -> Result<Option<$crate::store::StoredResource>, $crate::store::StoreError> {
                let row = sqlx::query($crate::store::sql::READ)
                    .bind(rtype)
                    .bind(id)
                    .fetch_optional(&self.$pool)
                    .await?;
                Ok(row.as_ref().map(stored).transpose()?)
            }

            async fn vread(
                &self,
                rtype: &str,
                id: &str,
                version: i64,
            ) -> Result<Option<$crate::store::StoredResource>, $crate::store::StoreError> {
                let row = sqlx::query($crate::store::sql::VREAD)
                    .bind(rtype)
                    .bind(id)
                    .bind(version)
                    .fetch_optional(&self.$pool)
                    .await?;
                Ok(row.as_ref().map(stored).transpose()?)
            }

            async fn history(
                &self,
                q: &$crate::store::HistoryQuery,
            ) -> Result<$crate::store::Page, $crate::store::StoreError> {
                use $crate::store::sql::history;
                let (t, i) = (q.rtype.as_deref(), q.id.as_deref());
                let page = history(t, i, q.since, Some((q.count, q.offset)));
                let (rows, total) = self.fetch_counted(&page, &history(t, i, q.since, None)).await?;
                let items = rows.iter().map(stored).collect::<Result<_, _>>()?;
                Ok($crate::store::Page { items, total: total as u64 })
            }

            async fn search(
                &self,
                q: &$crate::fhir::search::SearchQuery,
            ) -> Result<$crate::store::Page, $crate::store::StoreError> {
                use $crate::store::sql::{count, search};
                let (rows, total) = self.fetch_counted(&search(q), &count(q)).await?;
                let items = rows.iter().map(stored).collect::<Result<_, _>>()?;
                Ok($crate::store::Page { items, total: total as u64 })
            }

            async fn read_many(
                &self,
                refs: &[String],
            ) -> Result<Vec<$crate::store::StoredResource>, $crate::store::StoreError> {
                let keys: Vec<(&str, &str)> =
                    refs.iter().filter_map(|r| r.split_once('/')).collect();
                let mut found = std::collections::HashMap::new();
                // One statement per chunk, not one round trip per resource.
                for chunk in keys.chunks($crate::store::sql::READ_MANY_CHUNK) {
                    for row in self.fetch(&$crate::store::sql::read_many_chunk(chunk)).await? {
                        let s = stored(&row)?;
                        if !s.deleted {
                            found.insert((s.rtype.clone(), s.id.clone()), s);
                        }
                    }
                }
                // In the order asked, each once.
                Ok(keys
                    .iter()
                    .filter_map(|(t, i)| found.remove(&((*t).to_owned(), (*i).to_owned())))
                    .collect())
            }

            async fn hl7_ack(
                &self,
                sender: &str,
                control_id: &str,
            ) -> Result<Option<String>, $crate::store::StoreError> {
                use sqlx::Row;
                let row = sqlx::query($crate::store::hl7::SELECT_ACK)
                    .bind(sender)
                    .bind(control_id)
                    .fetch_optional(&self.$pool)
                    .await?;
                Ok(row.map(|r| r.try_get(0)).transpose()?)
            }

            async fn record(
                &self,
                kind: $crate::records::RecordKind,
                id: &str,
            ) -> Result<Option<String>, $crate::store::StoreError> {
                use sqlx::Row;
                let row = sqlx::query($crate::store::records::SELECT_RECORD)
                    .bind(kind.as_str())
                    .bind(id)
                    .fetch_optional(&self.$pool)
                    .await?;
                Ok(row.map(|r| r.try_get(0)).transpose()?)
            }

            async fn records(
                &self,
                q: &$crate::store::RecordQuery,
            ) -> Result<(Vec<String>, u64), $crate::store::StoreError> {
                use sqlx::Row;
                use $crate::store::records::{count_records, list_records};
                let (rows, total) = self.fetch_counted(&list_records(q), &count_records(q)).await?;
                let bodies = rows.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>()?;
                Ok((bodies, total as u64))
            }

            async fn events(
                &self,
                q: &$crate::store::EventQuery,
            ) -> Result<$crate::store::EventPage, $crate::store::StoreError> {
                use sqlx::Row;
                let s = $crate::store::events::list_events(q, Self::EVENTS_BY_TRANSACTION);
                let mut page = $crate::store::EventPage::default();
                for r in self.fetch(&s).await? {
                    if !r.try_get::<bool, _>(11)? {
                        page.held_back = true;
                        break;
                    }
                    let mut e = event(&r, 0)?;
                    e.tx = r.try_get(10)?;
                    page.items.push(e);
                }
                Ok(page)
            }

            async fn event(
                &self,
                seq: i64,
            ) -> Result<Option<$crate::store::EventRow>, $crate::store::StoreError> {
                let rows = self.fetch(&$crate::store::events::event_by_seq(seq)).await?;
                Ok(rows.first().map(|r| event(r, 0)).transpose()?)
            }

            async fn subscription_states(
                &self,
                id: Option<&str>,
            ) -> Result<Vec<$crate::store::outbox::SubState>, $crate::store::StoreError> {
                use sqlx::Row;
                let rows = sqlx::query($crate::store::outbox::SELECT_STATES)
                    .bind(id.unwrap_or(""))
                    .fetch_all(&self.$pool)
                    .await?;
                rows.iter()
                    .map(|r| {
                        Ok($crate::store::outbox::SubState {
                            id: r.try_get(0)?,
                            topic: r.try_get(1)?,
                            status: r.try_get(2)?,
                            events_since_start: r.try_get(3)?,
                            error: r.try_get(4)?,
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(Into::into)
            }

            async fn deliveries(
                &self,
                id: &str,
                limit: i64,
            ) -> Result<(Vec<serde_json::Value>, Vec<serde_json::Value>), $crate::store::StoreError> {
                use sqlx::Row;
                use $crate::fhir::search::dates::format_instant;
                let instant = |v: Option<i64>| v.map(format_instant);
                let rows = sqlx::query($crate::store::outbox::SELECT_DELIVERIES)
                    .bind(id)
                    .bind(limit)
                    .fetch_all(&self.$pool)
                    .await?;
                let notifications = rows
                    .iter()
                    .map(|r| {
                        Ok(serde_json::json!({
                            "id": r.try_get::<i64, _>(0)?,
                            "kind": r.try_get::<String, _>(1)?,
                            "event_number": r.try_get::<Option<i64>, _>(2)?,
                            "webhook_id": r.try_get::<String, _>(3)?,
                            "state": r.try_get::<String, _>(4)?,
                            "attempts": r.try_get::<i64, _>(5)?,
                            "next_attempt": instant(Some(r.try_get::<i64, _>(6)?)),
                            "created": instant(Some(r.try_get::<i64, _>(7)?)),
                            "done": instant(r.try_get::<Option<i64>, _>(8)?),
                            "last_http_status": r.try_get::<Option<i64>, _>(9)?,
                            "last_error": r.try_get::<Option<String>, _>(10)?,
                        }))
                    })
                    .collect::<Result<Vec<_>, sqlx::Error>>()?;
                let rows = sqlx::query($crate::store::outbox::SELECT_ATTEMPTS)
                    .bind(id)
                    .bind(limit)
                    .fetch_all(&self.$pool)
                    .await?;
                let attempts = rows
                    .iter()
                    .map(|r| {
                        Ok(serde_json::json!({
                            "notification": r.try_get::<i64, _>(0)?,
                            "at": instant(Some(r.try_get::<i64, _>(1)?)),
                            "http_status": r.try_get::<Option<i64>, _>(2)?,
                            "latency_ms": r.try_get::<i64, _>(3)? as f64 / 1000.0,
                            "error": r.try_get::<Option<String>, _>(4)?,
                        }))
                    })
                    .collect::<Result<Vec<_>, sqlx::Error>>()?;
                Ok((notifications, attempts))
            }

            async fn subscription_events(
                &self,
                id: &str,
                from: i64,
                to: i64,
                limit: i64,
            ) -> Result<Vec<(i64, $crate::store::EventRow)>, $crate::store::StoreError> {
                use sqlx::Row;
                let rows = sqlx::query($crate::store::outbox::SELECT_SUB_EVENTS)
                    .bind(id)
                    .bind(from)
                    .bind(to)
                    .bind(limit)
                    .fetch_all(&self.$pool)
                    .await?;
                rows.iter()
                    .map(|r| Ok((r.try_get(0)?, event(r, 1)?)))
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(Into::into)
            }

            async fn rows(
                &self,
                s: &$crate::store::sql::Sql,
            ) -> Result<Vec<Vec<$crate::store::executor::Cell>>, $crate::store::StoreError> {
                use sqlx::Row;
                use $crate::store::executor::Cell;
                let rows = self.fetch(s).await?;
                Ok(rows
                    .iter()
                    .map(|r| {
                        (0..r.len())
                            .map(|i| match r.try_get::<Option<i64>, _>(i) {
                                Ok(Some(n)) => Cell::Int(n),
                                Ok(None) => Cell::Null,
                                Err(_) => match r.try_get::<Option<String>, _>(i) {
                                    Ok(Some(t)) => Cell::Text(t),
                                    _ => Cell::Null,
                                },
                            })
                            .collect()
                    })
                    .collect())
            }

            $($backend_specific)*
        }
    };
}
