package server

// applyRoutes are the use-case routes: recommendations, decisions, reviews.
func (s *Server) applyRoutes() []route { return nil }
