//! The operator's queries on PostgreSQL.
//! PLACEHOLDER: being written.

use super::PgStore;
use crate::store::{
    Admin, AttemptRow, Imported, JobId, JobRow, ListFilter, NewJob, Stats, StoreError,
};

impl Admin for PgStore {
    fn add(&self, _jobs: &[NewJob]) -> Result<Vec<JobId>, StoreError> {
        unimplemented!()
    }
    fn import(
        &self,
        _batches: &mut dyn Iterator<Item = Vec<NewJob>>,
        _skip_existing: bool,
        _progress: &mut dyn FnMut(u64),
    ) -> Result<Imported, StoreError> {
        unimplemented!()
    }
    fn list(&self, _filter: &ListFilter) -> Result<Vec<JobRow>, StoreError> {
        unimplemented!()
    }
    fn show(&self, _id: JobId) -> Result<Option<(JobRow, Vec<AttemptRow>)>, StoreError> {
        unimplemented!()
    }
    fn stats(&self) -> Result<Stats, StoreError> {
        unimplemented!()
    }
    fn counts(&self) -> Result<(Vec<(String, i64)>, bool), StoreError> {
        unimplemented!()
    }
    fn paused(&self) -> Result<bool, StoreError> {
        unimplemented!()
    }
    fn set_paused(&self, _on: bool) -> Result<(), StoreError> {
        unimplemented!()
    }
    fn cancel(&self, _ids: &[JobId]) -> Result<Vec<(JobId, Option<String>)>, StoreError> {
        unimplemented!()
    }
    fn retry(
        &self,
        _ids: &[JobId],
        _force: bool,
    ) -> Result<Vec<(JobId, Option<String>)>, StoreError> {
        unimplemented!()
    }
    fn retry_failed(&self, _error: Option<&str>) -> Result<u64, StoreError> {
        unimplemented!()
    }
    fn blobs_of_finished(
        &self,
        _before: i64,
        _states: &[&str],
        _each: &mut dyn FnMut(&str),
    ) -> Result<(), StoreError> {
        unimplemented!()
    }
    fn blob_referenced(&self, _sha256: &str) -> Result<bool, StoreError> {
        unimplemented!()
    }
    fn live_attempts(&self) -> Result<Vec<i64>, StoreError> {
        unimplemented!()
    }
    fn still_live(&self, _attempt_ids: &[i64]) -> Result<usize, StoreError> {
        unimplemented!()
    }
}
