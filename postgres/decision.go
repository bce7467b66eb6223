package postgres

import (
	"context"
	"encoding/json"
	"fmt"

	portrait "github.com/portrait-dev/portrait"

	"github.com/jackc/pgx/v5"
)

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
	b := &pgx.Batch{}
	for _, it := range items {
		if it.ID == "" {
			return portrait.Errorf(portrait.EINVALID, "put items: an item has no id")
		}
		cats, attrs, err := itemJSON(it)
		if err != nil {
			return err
		}
		b.Queue(`INSERT INTO items (id, categories, attributes, price, updated) VALUES ($1, $2, $3::jsonb, $4, $5)
			ON CONFLICT (id) DO UPDATE SET categories = excluded.categories, attributes = excluded.attributes, price = excluded.price, updated = excluded.updated`,
			it.ID, cats, attrs, it.Price, ts(it.Updated))
	}
	if err := tx.tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("put items: %w", err)
	}
	return nil
}

func itemJSON(it portrait.Item) (cats []string, attrs string, err error) {
	cats, a := it.Categories, it.Attributes
	if cats == nil {
		cats = []string{}
	}
	if a == nil {
		a = map[string]any{}
	}
	ab, err := json.Marshal(a)
	if err != nil {
		return nil, "", portrait.Errorf(portrait.EINVALID, "put item %s: attributes must be JSON values: %v", it.ID, err)
	}
	return cats, string(ab), nil
}
