package kafka

// BatchOf is batchOf for the tests.
var BatchOf = batchOf
