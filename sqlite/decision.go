package sqlite

import (
	"context"
	"encoding/json"
	"fmt"

	portrait "github.com/portrait-dev/portrait"
)

const putItemSQL = `INSERT INTO items (id, categories, attributes, price, updated) VALUES (?, ?, ?, ?, ?)
	ON CONFLICT (id) DO UPDATE SET categories = excluded.categories, attributes = excluded.attributes, price = excluded.price, updated = excluded.updated`

// PutItems implements guard.Tx.PutItems.
func (tx *txn) PutItems(ctx context.Context, items []portrait.Item) error {
	for _, it := range items {
		if err := it.Validate(); err != nil {
			return err
		}
	}
	if len(items) == 0 {
		return nil
	}
	stmt, err := tx.stmt(ctx, putItemSQL)
	if err != nil {
		return fmt.Errorf("put items: %w", err)
	}
	for _, it := range items {
		if it.ID == "" {
			return portrait.Errorf(portrait.EINVALID, "put items: an item has no id")
		}
		cats, attrs, err := itemJSON(it)
		if err != nil {
			return err
		}
		if _, err := stmt.ExecContext(ctx, it.ID, cats, attrs, it.Price, nanos(it.Updated)); err != nil {
			return fmt.Errorf("put item %s: %w", it.ID, err)
		}
	}
	return nil
}

func itemJSON(it portrait.Item) (cats, attrs string, err error) {
	c, a := it.Categories, it.Attributes
	if c == nil {
		c = []string{}
	}
	if a == nil {
		a = map[string]any{}
	}
	cb, err := json.Marshal(c)
	if err != nil {
		return "", "", portrait.Errorf(portrait.EINVALID, "put item %s: categories: %v", it.ID, err)
	}
	ab, err := json.Marshal(a)
	if err != nil {
		return "", "", portrait.Errorf(portrait.EINVALID, "put item %s: attributes must be JSON values: %v", it.ID, err)
	}
	return string(cb), string(ab), nil
}
