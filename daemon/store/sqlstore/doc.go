// Package sqlstore implements store.Store over database/sql for any SQL
// database whose Dialect it is given; the sqlite and postgres packages open
// their databases, run their migrations and hand them to New.
//
//	st := sqlstore.New(readDB, writeDB, sqlstore.Dialect{Name: "sqlite", IsUnique: isUnique})
package sqlstore
