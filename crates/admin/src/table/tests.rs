use super::*;
use crate::fixture;

#[test]
fn zz_print() {
    print!("{}", render_table(&fixture::document()));
}
